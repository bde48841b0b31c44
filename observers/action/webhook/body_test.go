package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// A body template whose rendering is larger than the limit is a permanent
// failure, found before anything is sent.
func TestBodyTemplateTooLarge(t *testing.T) {
	t.Parallel()
	a := &Action{URL: "https://example.com/hook", BodyTemplate: `{"note": "{{ note }}"}`}
	o := &observers.Observer{Name: "orders", Actions: []observers.Action{a}}
	ev := &observers.Event{ID: "e", Kind: observers.KindInsert, EntityType: "Order", EntityID: "1",
		Data: map[string]any{"note": strings.Repeat("n", observers.TemplateMaxOutputBytes)}}
	err := a.Run(context.Background(), &observers.Delivery{Event: ev, Observer: o, Config: &observers.Config{}, Env: &observers.Env{}})
	require.Error(t, err)
	require.True(t, observers.IsPermanent(err), "%v", err)
	require.ErrorIs(t, err, observers.ErrTemplateTooLarge)
	require.Contains(t, err.Error(), "body_template")
}
