package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// `completion bash|zsh|fish` writes each shell's script; the scripts
// complete this binary's name.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, marker := range map[string]string{
		"bash": "# bash completion V2 for fraiseql-observers",
		"zsh":  "#compdef fraiseql-observers",
		"fish": "# fish completion for fraiseql-observers",
	} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := execute([]string{"completion", shell}, &out, &errOut)
			require.Equal(t, exitOK, code, errOut.String())
			require.Empty(t, errOut.String())
			require.Contains(t, out.String(), marker)
			require.Contains(t, out.String(), "__complete", "the script asks the binary for completions")
		})
	}
	var out, errOut bytes.Buffer
	require.Equal(t, exitUsage, execute([]string{"completion", "tcsh"}, &out, &errOut))
	require.Contains(t, errOut.String(), "tcsh")
}

// The binary answers the scripts' questions: subcommands, and the values of
// --format.
func TestCompletionAnswers(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, execute([]string{"__complete", "st"}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "status")
	out.Reset()
	require.Equal(t, exitOK, execute([]string{"__complete", "status", "--format", ""}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "text")
	require.Contains(t, out.String(), "json")
}
