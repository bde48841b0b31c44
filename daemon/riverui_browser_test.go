package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// browserTimeout bounds the whole browser session (Chromium's start
// included); each step waits for what it needs, never a fixed time.
const browserTimeout = 90 * time.Second

// stepTimeout bounds one step of the browser test.
const stepTimeout = 30 * time.Second

// chromium finds Debian's Chromium (scripts/ensure-services.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium found: run scripts/ensure-services.sh (it installs Debian's chromium package)")
	return ""
}

// screenshotDir is where the browser test leaves its screenshots: the
// artifacts directory in $RIVERUI_SCREENSHOTS when set, else a directory
// under $TMPDIR that outlives the test (its path is logged).
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RIVERUI_SCREENSHOTS")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "riverui-screenshots-")
		require.NoError(t, err)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("River UI screenshots: %s", dir)
	return dir
}

// A person opens River UI in a real headless Chromium, through the admin
// server's bearer token: the cancelled list shows the refused delivery,
// its page names the observer and links to its batch, and the batch job
// the test's change enqueued shows the observers it holds.
func TestRiverUIInBrowser(t *testing.T) {
	t.Parallel()
	in := startUI(t, "admin: {token_env: ADMIN_TOKEN}")
	shots := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	require.NoError(t, chromedp.Do(bctx), "start Chromium") // bound to bctx, not to the timeout below
	ctx, tcancel := context.WithTimeout(bctx, browserTimeout)
	defer tcancel()
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + adminToken}})
	require.NoError(t, err)

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		}
	}
	// step runs actions within stepTimeout and then takes the screenshot
	// name, also when they failed (the screenshot shows why).
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) string {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, stepTimeout)
		err := chromedp.Do(sctx, actions...)
		scancel()
		require.NoError(t, chromedp.Do(ctx, shot(name)))
		require.NoError(t, err, "step %s (screenshot %s.png in %s)\n%s", name, name, shots, in.ob.Log())
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		require.NoError(t, err)
		return text
	}

	// settled waits until the element whose text is text, and each of its
	// ancestors, is fully opaque: a toast has finished fading in.
	settled := func(text string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.PollFunction[bool](`(text) => {
				const e = [...document.querySelectorAll('*')].find(e => e.children.length === 0 && e.textContent === text);
				if (!e) return false;
				for (let n = e; n; n = n.parentElement) {
					if (parseFloat(getComputedStyle(n).opacity) < 1) return false;
				}
				return true;
			}`, chromedp.WithPollingArgs(text))(ctx, tg)
			return chromedp.Void{}, err
		}
	}

	// The cancelled list shows the refused delivery.
	text := step("1-cancelled-list",
		chromedp.Navigate(in.base+"/riverui/jobs?state=cancelled"),
		chromedp.WaitVisible(`//*[contains(text(), "fraiseql_observer_action")]`))
	require.Contains(t, text, `"observer":"order_audit"`)

	// Its page: the args name the observer, the entity and the batch job
	// it continues.
	text = step("2-cancelled-job",
		chromedp.Click(`//*[contains(text(), "fraiseql_observer_action")]`),
		chromedp.WaitVisible(`//*[contains(text(), "order_audit")]`))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(loc, fmt.Sprintf("/riverui/jobs/%d", in.cancelled)), loc)
	require.Contains(t, text, `"batch"`)
	require.Contains(t, text, "responded 400 Bad Request", "the attempt's error is shown")

	// Read-only: the Retry button's request is refused, and River UI says why.
	text = step("3-retry-refused",
		chromedp.Click(`//button[contains(., "Retry")]`),
		chromedp.WaitVisible(`//*[contains(text(), "Job retry failed")]`),
		settled("Job retry failed"))
	require.Contains(t, text, "River UI is read-only")

	// The batch job the test's change enqueued, completed, with its
	// deliveries by observer.
	text = step("4-batch-job",
		chromedp.Navigate(fmt.Sprintf("%s/riverui/jobs/%d", in.base, in.batch)),
		chromedp.WaitVisible(`//*[contains(text(), "fraiseql_observer_batch")]`))
	require.Contains(t, text, "2 items", "River UI folds the deliveries")
	// Unfold the deliveries as a person would: click each folded node
	// (River UI's disclosure buttons) until the observers show.
	unfold := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](`(() => {
			document.querySelectorAll('[role=button][aria-expanded=false]').forEach(b => b.click());
			return document.body.innerText.includes('order_created') && document.body.innerText.includes('order_audit');
		})()`, chromedp.WithPollingInterval(200*time.Millisecond))(ctx, tg)
		return chromedp.Void{}, err
	}
	text = step("5-batch-deliveries", unfold)
	for _, want := range []string{"Completed", `"order_created"`, `"order_audit"`, `"deliveries"`, `"seqs"`} {
		require.Contains(t, text, want)
	}
}
