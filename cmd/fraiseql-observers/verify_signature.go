package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/verify"
)

type verifySignatureOpts struct {
	Format      string
	SecretEnvs  []string
	Headers     []string
	HeadersFile string
	BodyFile    string
	Tolerance   string
	At          string
}

func newVerifySignatureCmd() *cobra.Command {
	opts := &verifySignatureOpts{}
	cmd := &cobra.Command{
		Use:   "verify-signature",
		Short: "Check a received delivery's signature, as a receiver does (package verify)",
		Long: `Check the signature of a delivery as a receiver would: Standard Webhooks
(webhook-id, webhook-timestamp, webhook-signature) or FraiseQL's
(X-FraiseQL-Signature-256), against one or more secrets read from
environment variables (several during a rotation: any may match). The
headers come from --header (repeatable) and --headers-file (one "Name: value"
per line, as a capture prints them), the body from --body-file (default
stdin), byte for byte. --at checks a capture as of its time. Secrets never
appear in the output. Exit code 0 valid, 1 invalid, 2 bad usage.`,
		Example: `  WEBHOOK_SECRET=whsec_… fraiseql-observers verify-signature --secret-env WEBHOOK_SECRET \
    --header 'webhook-id: msg_…' --header 'webhook-timestamp: 1764590400' \
    --header 'webhook-signature: v1,…' --body-file body.json --at 1764590400`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateFormat(opts.Format); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runVerifySignature(cmd.Context(), opts, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	formatFlag(cmd, &opts.Format)
	f := cmd.Flags()
	f.StringArrayVar(&opts.SecretEnvs, "secret-env", nil, "environment variable holding a signing secret (repeat for a rotation)")
	f.StringArrayVarP(&opts.Headers, "header", "H", nil, `a request header, "Name: value" (repeatable)`)
	f.StringVar(&opts.HeadersFile, "headers-file", "", `a file of request headers, one "Name: value" per line`)
	f.StringVar(&opts.BodyFile, "body-file", "-", "the request body, byte for byte (- is stdin)")
	f.StringVar(&opts.Tolerance, "tolerance", "5m", "how far the signature's timestamp may be from --at")
	f.StringVar(&opts.At, "at", "", "check as of this time (unix seconds or RFC 3339; default now)")
	return cmd
}

// verifyReport is the --format json output.
type verifyReport struct {
	Valid  bool   `json:"valid"`
	Scheme string `json:"scheme"`
	Error  string `json:"error,omitempty"`
}

func runVerifySignature(_ context.Context, opts *verifySignatureOpts, stdin io.Reader, w io.Writer) error {
	secrets, header, body, vo, err := verifyInputs(opts, stdin)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	scheme, verr := verify.Verify(header, body, secrets, vo)
	rep := verifyReport{Valid: verr == nil, Scheme: string(scheme)}
	if verr != nil {
		rep.Error = verr.Error()
	}
	if opts.Format == "json" {
		if err := writeJSON(w, rep); err != nil {
			return err
		}
	} else if verr == nil {
		fmt.Fprintf(w, "signature ok (%s, %d byte body)\n", scheme, len(body))
	}
	if verr != nil {
		hint := "check that the body is byte for byte what was received, the headers are complete and the secret is the action's"
		if strings.Contains(verr.Error(), "tolerance") {
			hint = "to check a capture, pass --at with its time (the webhook-timestamp, or t= of X-FraiseQL-Signature-256)"
		}
		return withExitCode(exitFailure, errors.WithHint(verr, hint))
	}
	return nil
}

func verifyInputs(opts *verifySignatureOpts, stdin io.Reader) ([]string, http.Header, []byte, verify.Options, error) {
	var vo verify.Options
	if len(opts.SecretEnvs) == 0 {
		return nil, nil, nil, vo, errors.WithHint(errors.New("no --secret-env"), "export the secret in a variable and name it: --secret-env WEBHOOK_SECRET")
	}
	var secrets []string
	for _, name := range opts.SecretEnvs {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, nil, nil, vo, errors.WithHintf(errors.Newf("--secret-env %s: the variable is not set", name), "export %s first", name)
		}
		secrets = append(secrets, v)
	}
	header := http.Header{}
	lines := opts.Headers
	if opts.HeadersFile != "" {
		b, err := os.ReadFile(opts.HeadersFile)
		if err != nil {
			return nil, nil, nil, vo, errors.Wrap(err, "--headers-file")
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && strings.Contains(l, ":") {
				lines = append(lines, l)
			}
		}
	}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, nil, nil, vo, errors.WithHint(errors.Newf("--header %q is not \"Name: value\"", observers.Shorten(l, 60)), "e.g. --header 'webhook-id: msg_…'")
		}
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var body []byte
	var err error
	if opts.BodyFile == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(opts.BodyFile)
	}
	if err != nil {
		return nil, nil, nil, vo, errors.Wrap(err, "--body-file")
	}
	if vo.Tolerance, err = parseAge("tolerance", opts.Tolerance); err != nil {
		return nil, nil, nil, vo, err
	}
	if opts.At != "" {
		at, err := parseAt(opts.At)
		if err != nil {
			return nil, nil, nil, vo, err
		}
		vo.Now = func() time.Time { return at }
	}
	return secrets, header, body, vo, nil
}

func parseAt(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil // as webhook-timestamp carries it
	}
	if t, ok := parseTime(s, time.Now()); ok {
		return t, nil
	}
	return time.Time{}, errors.WithHint(errors.Newf("--at %q is neither unix seconds nor a time", s),
		"e.g. 1764590400, 2026-12-01T12:00:00Z or an age such as 2h")
}
