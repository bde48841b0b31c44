package observers

import (
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"
)

// A rendering larger than TemplateMaxOutputBytes is an error, found before
// the whole output is built.
func TestTemplateOutputLimit(t *testing.T) {
	t.Parallel()
	tpl, err := CompileTemplate(`{"a": "{{ half }}", "b": "{{ half }}", "c": "{{ half }}"}`)
	require.NoError(t, err)
	half := strings.Repeat("x", TemplateMaxOutputBytes/2)
	_, err = tpl.RenderFunc(map[string]any{"half": half}, func(_ string, v any, _ bool) (string, error) {
		return RenderValue(v), nil
	})
	require.ErrorIs(t, err, ErrTemplateTooLarge)
	require.Contains(t, err.Error(), "rendered template is larger than 1 MiB (1048576 bytes)")
	require.NotEmpty(t, errors.GetAllHints(err))

	big, err := CompileTemplate(strings.Repeat("{{ half }}", 3))
	require.NoError(t, err)
	_, err = big.Render(map[string]any{"half": half}, false)
	require.ErrorIs(t, err, ErrTemplateTooLarge)
	_, err = big.Render(map[string]any{"half": "ok"}, true)
	require.NoError(t, err)
}

// The template source is bounded at load.
func TestTemplateSourceLimit(t *testing.T) {
	t.Parallel()
	_, err := CompileTemplate(strings.Repeat("x", TemplateMaxBytes+1))
	require.Error(t, err)
	require.Contains(t, err.Error(), "template is longer than 256 KiB (262144 bytes)")

	src := "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: log\n        message_template: '" +
		strings.Repeat("x", TemplateMaxBytes+1) + "'\n"
	_, diags, err := Parse("t.yaml", []byte(src))
	require.Error(t, err)
	require.Len(t, diags.Errors(), 1)
	require.True(t, strings.HasPrefix(diags.Errors()[0].String(), "t.yaml:7:27: invalid message_template: template is longer than 256 KiB (262144 bytes)"),
		diags.Errors()[0].String())
}
