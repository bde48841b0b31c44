package observers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// DedupKey is the content key of an event: the hex SHA-256 of its entity
// type, entity id, kind and the canonical JSON of its data (object keys
// sorted, no insignificant space, numbers as written). The same change
// logged twice has the same key whatever its id, pk, txid or timestamp.
func DedupKey(e *Event) string {
	h := sha256.New()
	for _, s := range []string{e.EntityType, e.EntityID, string(e.Kind)} {
		fmt.Fprintf(h, "%d:%s\x00", len(s), s)
	}
	h.Write(canonicalJSON(e.RawData))
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalJSON re-encodes raw with sorted object keys and compact spacing.
// Numbers keep their text (json.Number), so 1.0 and 1 differ but no big
// integer is rounded. Invalid or empty input is returned as is.
func canonicalJSON(raw []byte) []byte {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	// encoding/json writes map keys sorted; HTML escaping is off so the
	// output is stable text.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return raw
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}
