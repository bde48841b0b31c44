package main

import (
	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"
)

type dlqRemoveOpts struct {
	dlqOpts
	dlqFilterFlags
	All       bool
	OlderThan string
	DryRun    bool
}

func (o *dlqRemoveOpts) Validate(args []string) error {
	switch {
	case o.All && len(args) > 0:
		return errors.WithHint(errors.New("--all and ids are given together"), "remove some ids, or --all --older-than AGE")
	case o.All && o.OlderThan == "":
		return errors.WithHint(errors.New("--all needs --older-than"), "e.g. dlq remove --all --older-than 30d")
	case !o.All && len(args) == 0:
		return errors.WithHint(errors.New("no id given"), "dlq remove ID..., or dlq remove --all --older-than 30d")
	case !o.All && (o.OlderThan != "" || o.dlqFilterFlags != dlqFilterFlags{}):
		return errors.WithHint(errors.New("--older-than and the filters go with --all"), "dlq remove --all --older-than 30d [--observer NAME]")
	}
	return o.dlqOpts.Validate()
}

func newDLQRemoveCmd() *cobra.Command {
	opts := &dlqRemoveOpts{}
	cmd := &cobra.Command{
		Use:   "remove {ID... | --all --older-than AGE}",
		Short: "Delete dead deliveries",
		Long: `Delete dead deliveries: the ids given, or with --all every dead delivery that
died more than --older-than ago (and that the filters select), in transactions
of 1,000 with a progress report on stderr. A dead action job is deleted. A
delivery of a dead batch job is marked removed in the batch job's metadata
(dlq_deliveries), so the batch's other deliveries stay; the batch job is
deleted once all of its deliveries are marked. A delivery that is not dead is
skipped with the reason. With --dry-run nothing changes.`,
		Example: `  fraiseql-observers dlq remove 123 45.2
  fraiseql-observers dlq remove --all --older-than 30d --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Validate(args); err != nil {
				return withExitCode(exitUsage, err)
			}
			if !opts.All {
				ids, err := parseDeliveryIDs(args)
				if err != nil {
					return err
				}
				return runDLQChange(cmd.Context(), &opts.dlqOpts, ids, dlqRemove, opts.DryRun, cmd.OutOrStdout())
			}
			f, err := opts.filter()
			if err != nil {
				return err
			}
			if f.OlderThan, err = parseAge("older-than", opts.OlderThan); err != nil {
				return err
			}
			return runDLQChangeAll(cmd.Context(), &opts.dlqOpts, f, dlqRemove, opts.DryRun, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	opts.dlqOpts.register(cmd)
	opts.dlqFilterFlags.register(cmd)
	cmd.Flags().BoolVar(&opts.All, "all", false, "remove every dead delivery older than --older-than")
	cmd.Flags().StringVar(&opts.OlderThan, "older-than", "", "with --all: only the deliveries that died longer ago than this, e.g. 30d")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "change nothing; say what would be removed")
	return cmd
}
