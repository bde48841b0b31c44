package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/daemon"
	obsql "github.com/fraiseql/fraiseql-observers/sql"
)

type migrateOpts struct {
	DatabaseURL string
	Format      string
	// Status lists the migrations and whether each is applied, applying none.
	Status bool
	// Search also installs what the search: and audit: blocks' backend
	// needs outside the database: Elasticsearch's index template and ILM
	// policy, when absent.
	Search     bool
	ConfigPath string
}

func (o *migrateOpts) Validate() error {
	if o.DatabaseURL == "" {
		return errors.WithHint(errors.New("--database-url is empty"), "pass --database-url or set DATABASE_URL")
	}
	return validateFormat(o.Format)
}

func newMigrateCmd() *cobra.Command {
	opts := &migrateOpts{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the observer's schema (River's tables included)",
		Long: `Apply River's migrations and then the observer's to the database. Safe to
run at every deploy and from several instances at once: applied migrations
are skipped and concurrent runs wait for each other.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runMigrate(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	cmd.Flags().BoolVar(&opts.Status, "status", false, "list migrations and whether each is applied; apply nothing")
	cmd.Flags().BoolVar(&opts.Search, "search", false, "also install Elasticsearch's index template and 30-day ILM policy when absent (when search: or audit: uses it)")
	cmd.Flags().StringVarP(&opts.ConfigPath, "config", "c", "", "with --search: the observers YAML whose elasticsearch: block applies (default: the configuration loaded last by run)")
	return cmd
}

// migrateReport is the --format json output of migrate.
type migrateReport struct {
	// Applied lists the migrations this run applied (empty with --status).
	Applied []obsql.MigrationInfo `json:"applied"`
	// Migrations lists every migration with its state (--status only).
	Migrations []obsql.MigrationInfo `json:"migrations,omitempty"`
	UpToDate   bool                  `json:"up_to_date"`
	// Search says what --search did.
	Search string `json:"search,omitempty"`
}

func runMigrate(ctx context.Context, opts *migrateOpts, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	pool, err := daemon.Connect(ctx, opts.DatabaseURL)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	defer pool.Close()

	report := migrateReport{Applied: []obsql.MigrationInfo{}}
	if opts.Status {
		report.Migrations, err = obsql.Status(ctx, pool)
		if err != nil {
			return withExitCode(exitFailure, errors.Wrap(err, "migration status"))
		}
		report.UpToDate = true
		for _, m := range report.Migrations {
			report.UpToDate = report.UpToDate && m.Applied
		}
	} else {
		res, err := obsql.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
		if err != nil {
			return withExitCode(exitFailure, errors.WithHint(err,
				"the failed migration was rolled back; fix the cause and run migrate again"))
		}
		report.Applied = res.Applied()
		report.UpToDate = true
		if opts.Search {
			if report.Search, err = migrateSearch(ctx, pool, opts.ConfigPath); err != nil {
				return err
			}
		}
	}

	if opts.Format == "json" {
		return writeJSON(w, report)
	}
	return writeMigrateText(w, opts, report)
}

func writeMigrateText(w io.Writer, opts *migrateOpts, report migrateReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if opts.Status {
		fmt.Fprintln(tw, "COMPONENT\tVERSION\tNAME\tSTATE")
		pending := 0
		for _, m := range report.Migrations {
			state := "applied"
			if !m.Applied {
				state = "pending"
				pending++
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.Component, m.Version, m.Name, state)
		}
		if err := tw.Flush(); err != nil {
			return errors.Wrap(err, "write output")
		}
		if pending == 0 {
			_, err := fmt.Fprintln(w, "schema is up to date")
			return errors.Wrap(err, "write output")
		}
		_, err := fmt.Fprintf(w, "%d pending; run `fraiseql-observers migrate` to apply\n", pending)
		return errors.Wrap(err, "write output")
	}

	if report.Search != "" {
		defer fmt.Fprintln(w, report.Search)
	}
	if len(report.Applied) == 0 {
		_, err := fmt.Fprintln(w, "applied 0 migrations; schema is up to date")
		return errors.Wrap(err, "write output")
	}
	for _, m := range report.Applied {
		fmt.Fprintf(tw, "applied\t%s\t%d\t%s\t(%s)\n", m.Component, m.Version, m.Name, m.Duration.Round(100*time.Microsecond))
	}
	if err := tw.Flush(); err != nil {
		return errors.Wrap(err, "write output")
	}
	_, err := fmt.Fprintf(w, "applied %d migrations; schema is up to date\n", len(report.Applied))
	return errors.Wrap(err, "write output")
}

// migrateSearch installs Elasticsearch's index template and ILM policy when
// the configuration's search: or audit: block uses Elasticsearch, and says
// what it did.
func migrateSearch(ctx context.Context, pool *pgxpool.Pool, configPath string) (string, error) {
	cfg, source, err := commandConfig(ctx, pool, configPath)
	if err != nil {
		return "", err
	}
	b, err := daemon.OpenSearchBackends(cfg, pool, os.LookupEnv)
	if err != nil {
		return "", withExitCode(exitUsage, err)
	}
	if b.ES == nil {
		return fmt.Sprintf("search: the postgres backend's tables come with the migrations (%s uses no Elasticsearch)", source), nil
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.ES.EnsureTemplates(ictx); err != nil {
		return "", withExitCode(exitFailure, errors.WithHint(errors.Wrap(err, "install the Elasticsearch index template and ILM policy"),
			"check elasticsearch.url and its credentials; run again: what is present is left as it is"))
	}
	return "search: Elasticsearch's index template and ILM policy are in place (installed when absent; present ones left as they are)", nil
}
