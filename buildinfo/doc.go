// Package buildinfo says which build of fraiseql-observers is running: the
// module version and the VCS commit the go command recorded in the binary
// (runtime/debug.ReadBuildInfo). `--version`, the `run` log, the heartbeats
// in observer_listeners (and so `status --detailed`) and the webhook
// User-Agent all read it here, so they never disagree.
package buildinfo
