package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
)

// verify-signature accepts a capture signed by the Standard Webhooks
// library or by FraiseQL's scheme, with any of the rotation's secrets, and
// refuses a tampered one without printing a secret. Not parallel: it sets
// environment variables.
func TestVerifySignatureCommand(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	t.Setenv("WH_SECRET", secret)
	t.Setenv("WH_OLD", "whsec_b2xkLXNlY3JldA==")
	dir := t.TempDir()
	body := []byte(`{"entity_type":"Order","entity_id":"A-1001"}`)
	bodyFile := filepath.Join(dir, "body.json")
	require.NoError(t, os.WriteFile(bodyFile, body, 0o600))
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ref, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	sig, err := ref.Sign("msg_1", at, body)
	require.NoError(t, err)
	headers := filepath.Join(dir, "headers.txt")
	require.NoError(t, os.WriteFile(headers, []byte("content-type: application/json\nwebhook-id: msg_1\nwebhook-timestamp: "+
		strconv.FormatInt(at.Unix(), 10)+"\nwebhook-signature: "+sig+"\n"), 0o600))

	run := func(args ...string) (int, string, string) {
		return runMigrateCLI(t, append([]string{"verify-signature"}, args...)...)
	}
	code, out, errOut := run("--secret-env", "WH_OLD", "--secret-env", "WH_SECRET", "--headers-file", headers, "--body-file", bodyFile, "--at", at.Format(time.RFC3339))
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "signature ok (standard-webhooks, 44 byte body)\n", out)

	code, out, _ = run("--secret-env", "WH_SECRET", "--headers-file", headers, "--body-file", bodyFile, "--format", "json")
	require.Equal(t, exitFailure, code, "checked now, the capture is too old")
	var rep verifyReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.False(t, rep.Valid)
	require.Contains(t, rep.Error, "tolerance")
	code, _, errOut = run("--secret-env", "WH_SECRET", "--headers-file", headers, "--body-file", bodyFile)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "pass --at with its time")

	tampered := filepath.Join(dir, "tampered.json")
	require.NoError(t, os.WriteFile(tampered, []byte(`{"entity_type":"Order","entity_id":"A-1002"}`), 0o600))
	code, out, errOut = run("--secret-env", "WH_SECRET", "--headers-file", headers, "--body-file", tampered, "--at", strconv.FormatInt(at.Unix(), 10))
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "no matching v1 signature")
	require.NotContains(t, out+errOut, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

	code, out, errOut = run("--secret-env", "WH_PLAIN", "--body-file", bodyFile)
	require.Equal(t, exitUsage, code, out)
	require.Contains(t, errOut, "--secret-env WH_PLAIN: the variable is not set")

	t.Setenv("WH_PLAIN", "raw-secret")
	code, out, errOut = run("--secret-env", "WH_PLAIN", "-H", "X-FraiseQL-Signature-256: "+webhook.SignFraiseQL("raw-secret", time.Now(), body), "--body-file", bodyFile)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "signature ok (fraiseql")

	code, _, errOut = run("--secret-env", "WH_PLAIN", "-H", "no colon", "--body-file", bodyFile)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `is not "Name: value"`)
}
