package observers_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

const minimalObserver = "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: log\n"

// A file over the size limit is refused before it is parsed, with the limit
// in the message, at the place the limit is crossed; LoadConfig reads no
// more of it than the limit.
func TestConfigFileTooLarge(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("# padding padding padding padding padding padding padding padding\n", observers.ConfigMaxBytesDefault/64)
	src := minimalObserver + pad
	require.Greater(t, len(src), observers.ConfigMaxBytesDefault)
	got := errorDiags(t, "big.yaml", src)
	require.Len(t, got, 1)
	require.Regexp(t, `^big\.yaml:\d+:\d+: the configuration file is larger than 1 MiB \(1048576 bytes\)`, got[0])
	require.Contains(t, got[0], "hint: ")

	path := filepath.Join(t.TempDir(), "huge.yaml")
	require.NoError(t, os.WriteFile(path, []byte(minimalObserver+strings.Repeat(pad, 8)), 0o600))
	cfg, diags, err := observers.LoadConfig(context.Background(), path, observers.LoadOptions{})
	require.Error(t, err)
	require.Nil(t, cfg)
	require.Len(t, diags, 1)
	require.Contains(t, diags[0].Message, "larger than 1 MiB")

	// The limit is an option.
	cfg, _, err = observers.LoadConfig(context.Background(), path, observers.LoadOptions{MaxFileBytes: 16 << 20})
	require.NoError(t, err)
	require.Len(t, cfg.Observers, 1)
}

// A huge key is not echoed back whole: quoted keys and values are cut to
// 80 characters.
func TestConfigLongKeyTruncated(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", 512<<10)
	got := errorDiags(t, "key.yaml", "listener:\n  "+key+": 1\n")
	require.Len(t, got, 1)
	require.Less(t, len(got[0]), 400, "the diagnostic quotes a cut key")
	require.Contains(t, got[0], `key.yaml:2:3: unknown key "`+strings.Repeat("k", 79)+`…" in listener`)

	got = errorDiags(t, "obs.yaml", "observers:\n  "+key+":\n    entity: Order\n")
	require.NotEmpty(t, got)
	for _, d := range got {
		require.Less(t, len(d), 600, "an observer's name is cut wherever it is quoted: %.200s", d)
	}
}

// Deep nesting is refused before the YAML parser sees it (its cost grows
// with the square of the depth).
func TestConfigDeepNesting(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"flow":   "listener: " + strings.Repeat("[", 100_000),
		"block":  "listener:\n" + strings.Repeat("- ", 100_000) + "1\n",
		"mixed":  "observers:\n  o:\n    params: " + strings.Repeat("{a: [", 50_000),
		"deeper": "a:\n" + nestedBlock(observers.ConfigMaxDepth+1),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := errorDiags(t, name+".yaml", src)
			require.Len(t, got, 1, "%v", got)
			require.Regexp(t, `^`+name+`\.yaml:\d+:\d+: the configuration nests deeper than 100 levels`, got[0])
		})
	}
	// At the limit, the depth is accepted (and reported as what it is).
	got := errorDiags(t, "ok.yaml", "a:\n"+nestedBlock(observers.ConfigMaxDepth-2))
	require.Len(t, got, 1)
	require.Contains(t, got[0], `unknown key "a" in the configuration`)
}

// nestedBlock is n levels of block mappings, one key each.
func nestedBlock(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat(" ", i+1) + "k:\n")
	}
	return b.String()
}

// A block mapping with very many keys costs the parser the square of their
// number; past the limit it is refused before parsing.
func TestConfigTooManyKeys(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("observers:\n")
	for i := range observers.ConfigMaxMappingKeys + 1 {
		b.WriteString("  o" + strings.Repeat("x", i%7) + itoa(i) + ": {}\n")
	}
	got := errorDiags(t, "keys.yaml", b.String())
	require.Len(t, got, 1)
	require.Regexp(t, `^keys\.yaml:\d+:3: the mapping has more than 5000 keys`, got[0])
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// Aliases and merge keys are expanded within a budget of nodes: a bomb is
// one positioned error and decoding stops.
func TestConfigExpansionBudget(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"alias_bomb.yaml", "merge_bomb.yaml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "invalid", file)
			cfg, diags, err := observers.LoadConfig(context.Background(), path, observers.LoadOptions{})
			require.Error(t, err)
			require.Nil(t, cfg)
			require.Len(t, diags.Errors(), 1, "%v", diags)
			d := diags.Errors()[0]
			require.Positive(t, d.Line)
			require.Positive(t, d.Column)
			require.Contains(t, d.Message, "the configuration expands to more than 100000 nodes (aliases or merge keys), past the limit at alias *")
			require.NotEmpty(t, d.Hint)
		})
	}

	// Ordinary anchors stay well within it, merge keys included.
	var b strings.Builder
	b.WriteString("observers:\n  base:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - &hook {type: webhook, url: 'https://a.example/', headers: {X-A: '1'}}\n")
	for i := range 200 {
		b.WriteString("  o" + itoa(i) + ":\n    entity: Order\n    events: [INSERT]\n    actions:\n      - <<: *hook\n        timeout: 3s\n      - *hook\n")
	}
	cfg, diags, err := observers.Parse("anchors.yaml", []byte(b.String()))
	require.NoError(t, err, "%v", diags)
	require.Len(t, cfg.Observers, 201)
}

// Merge keys nest at most ConfigMaxMergeDepth levels; deeper is an error
// at the merge key past the limit, not a silently ignored merge.
func TestConfigMergeDepth(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: database\n        function_name: f\n        params:\n")
	b.WriteString("          m0: &m0 {a: 1}\n")
	for i := 1; i <= observers.ConfigMaxMergeDepth; i++ { // m8 merges 8 deep: the limit
		b.WriteString("          m" + itoa(i) + ": &m" + itoa(i) + " {<<: *m" + itoa(i-1) + "}\n")
	}
	b.WriteString("    retry:\n      <<: *m" + itoa(observers.ConfigMaxMergeDepth) + "\n") // one more
	got := errorDiags(t, "merge.yaml", b.String())
	require.Equal(t, []string{"merge.yaml:10:20: merge keys (<<) nest more than 8 levels deep\n  hint: merge the innermost anchors into one mapping"}, got)
}

// An alias must follow its anchor (YAML's rule), and an anchor that
// contains an alias of itself is refused rather than followed.
func TestConfigAliasOrderAndCycles(t *testing.T) {
	t.Parallel()
	got := errorDiags(t, "fwd.yaml", "listener: *l\nobservers: &l {}\n")
	require.Equal(t, []string{"fwd.yaml:1:11: unknown alias *l: no anchor &l before it\n  hint: define the anchor (&l) before its first use"}, got)

	got = errorDiags(t, "cycle.yaml", minimalObserver+"        message_template: x\n    retry: &r {<<: *r}\n")
	require.Len(t, got, 1, "%v", got)
	require.Contains(t, got[0], "alias *r refers to its own anchor")

	got = errorDiags(t, "cycle2.yaml", "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: database\n        function_name: f\n        params: &p {a: [*p]}\n")
	require.Len(t, got, 1, "%v", got)
	require.Contains(t, got[0], "alias *p refers to its own anchor")

	// An anchor may be defined again; an alias names the latest before it.
	cfg, diags, err := observers.Parse("redef.yaml", []byte(`observers:
  a:
    entity: &e Order
    events: [INSERT]
    actions: [{type: log}]
  b:
    entity: *e
    events: &e [UPDATE]
    actions: [{type: log}]
  c:
    entity: User
    events: *e
    actions: [{type: log}]
`))
	require.NoError(t, err, "%v", diags)
	require.Equal(t, "Order", cfg.Observer("b").Entity)
	require.Equal(t, []observers.Kind{observers.KindUpdate}, cfg.Observer("c").Events)
}

// params decoded by the loader keep YAML's types, merge keys included.
func TestConfigParamsValues(t *testing.T) {
	t.Parallel()
	cfg, diags, err := observers.Parse("p.yaml", []byte(`observers:
  o:
    entity: Order
    events: [INSERT]
    actions:
      - type: database
        function_name: f
        params:
          base: &b {tier: gold, n: 3}
          merged: {<<: *b, n: 4, ok: true, ratio: 0.5, none: null, list: [1, "two", *b]}
`))
	require.NoError(t, err, "%v", diags)
	s := cfg.Observer("o").Actions[0].Settings()
	var params map[string]any
	for _, kv := range s {
		if kv.Key == "params" {
			params = kv.Value.(map[string]any)
		}
	}
	require.Equal(t, map[string]any{
		"base": map[string]any{"tier": "gold", "n": uint64(3)},
		"merged": map[string]any{"tier": "gold", "n": uint64(4), "ok": true, "ratio": 0.5, "none": nil,
			"list": []any{uint64(1), "two", map[string]any{"tier": "gold", "n": uint64(3)}}},
	}, params)
}
