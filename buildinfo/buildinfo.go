package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Devel is the version of a binary the go command could not version: built
// inside the module's source tree without VCS information (-buildvcs=false,
// a git worktree, a source archive). It is what `go version -m` shows.
const Devel = "(devel)"

// version, when set with -ldflags "-X
// github.com/fraiseql/fraiseql-observers/buildinfo.version=v1.2.3", is the
// version a packager chose; it wins over the module version.
var version string

// Info is what a binary knows of its own build.
type Info struct {
	// Version is the module version: a tag such as v1.2.3 (`go install
	// …@v1.2.3`), a pseudo-version built from the commit
	// (v0.0.0-20260101120000-abcdef123456, `go build` in a git checkout,
	// with +dirty when the tree had changes), or Devel.
	Version string `json:"version"`
	// Module is the main module's path.
	Module string `json:"module"`
	// Commit is the VCS revision (vcs.revision); "" when not recorded.
	Commit string `json:"commit"`
	// Dirty is true when the working tree had uncommitted changes
	// (vcs.modified).
	Dirty bool `json:"dirty"`
	// CommitTime is the commit's time (vcs.time); nil when not recorded.
	// The go command records no build time: this is the nearest it keeps.
	CommitTime *time.Time `json:"commit_time"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Get returns the running binary's build information (read once).
var Get = sync.OnceValue(func() Info { return read(debug.ReadBuildInfo()) })

// Version is Get().Version.
func Version() string { return Get().Version }

// read turns the go command's build information into Info.
func read(bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: Devel, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && bi != nil {
		in.Module = bi.Main.Path
		if bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		in.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.modified":
				in.Dirty = s.Value == "true"
			case "vcs.time":
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					in.CommitTime = &t
				}
			}
		}
	}
	if version != "" {
		in.Version = version
	}
	return in
}
