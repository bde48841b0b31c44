package observertest

import (
	"os/exec"
	"path/filepath"

	"github.com/cockroachdb/errors"
)

// MainPackage is the import path of the fraiseql-observers command.
const MainPackage = "github.com/fraiseql/fraiseql-observers/cmd/fraiseql-observers"

// BuildBinary runs `go build flags... -o dir/fraiseql-observers MainPackage`
// and returns the binary's path. flags are go build flags, e.g. "-race" or
// "-tags", "faultinject".
//
// The package is named by its import path, so the go command resolves it
// through the module of the working directory: this works from any
// directory of this module (go finds the module root itself) and from any
// module that requires github.com/fraiseql/fraiseql-observers. Call it once,
// from TestMain.
func BuildBinary(dir string, flags ...string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", errors.WithHint(errors.Wrap(err, "observertest: find the go command"),
			"put the Go toolchain's bin directory on PATH")
	}
	out := filepath.Join(dir, "fraiseql-observers")
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, MainPackage)
	cmd := exec.Command(goTool, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", errors.WithHint(errors.Wrapf(err, "observertest: go %v\n%s", args, msg),
			"run from inside a module that requires "+MainPackage+
				" (`go get "+MainPackage+"` adds what go.sum needs)")
	}
	return out, nil
}
