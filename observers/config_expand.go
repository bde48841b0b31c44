package observers

import (
	"fmt"

	"github.com/goccy/go-yaml/ast"
)

// The parser keeps aliases as AliasNodes: the loader expands them, each
// time it follows one, and merge keys (<<) with them. Nested aliases
// multiply ("billion laughs": nine levels of nine aliases is 387 million
// nodes from 600 bytes), so every alias followed is charged the nodes of
// its anchor (a string one node per 256 bytes; the aliases inside are
// charged when they are followed in turn) against ConfigMaxExpandedNodes
// for the whole file, rows included. Past it the loader reports one error,
// at the alias, and stops decoding.

// textPerNode is how many bytes of a string count as one node.
const textPerNode = 256

// stopDecoding is the panic that ends decoding once the expansion budget
// is spent; loader.parse recovers it (as text/template's parser does its
// errors). The error is already reported.
type stopDecoding struct{}

// anchorScope maps each alias to the anchor it names: the latest one
// defined before it, in document order (YAML's rule). An alias without an
// anchor before it, or inside its own anchor (the one way to make a
// cycle, given that order), is reported and left unresolved.
func (l *loader) anchorScope(root ast.Node) {
	defined := map[string]ast.Node{} // anchor name → its node
	open := map[ast.Node]bool{}      // anchors being walked
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		switch v := n.(type) {
		case *ast.AnchorNode:
			if v.Name != nil {
				defined[v.Name.GetToken().Value] = v.Value
			}
			open[v.Value] = true
			walk(v.Value)
			delete(open, v.Value)
		case *ast.AliasNode:
			if v.Value == nil {
				return
			}
			name := Shorten(v.Value.GetToken().Value, quoteMax)
			target, ok := defined[v.Value.GetToken().Value]
			switch {
			case !ok:
				l.errorf(v, fmt.Sprintf("unknown alias *%s: no anchor &%s before it", name, name),
					fmt.Sprintf("define the anchor (&%s) before its first use", name))
			case open[target]:
				l.errorf(v, fmt.Sprintf("alias *%s refers to its own anchor", name),
					"an anchor cannot contain an alias of itself; write the nested value out")
			default:
				l.aliases[v] = target
			}
		default:
			for _, c := range children(n) {
				walk(c)
			}
		}
	}
	walk(root)
}

// children are the nodes under n, aliases not followed.
func children(n ast.Node) []ast.Node {
	switch v := n.(type) {
	case *ast.MappingNode:
		out := make([]ast.Node, len(v.Values))
		for i, mv := range v.Values {
			out[i] = mv
		}
		return out
	case *ast.MappingValueNode:
		return []ast.Node{v.Key, v.Value}
	case *ast.MappingKeyNode:
		return []ast.Node{v.Value}
	case *ast.SequenceNode:
		return v.Values
	case *ast.TagNode:
		return []ast.Node{v.Value}
	case *ast.AnchorNode:
		return []ast.Node{v.Value}
	}
	return nil
}

// unresolved reports whether n is an alias left unresolved (reported).
func (l *loader) unresolved(n ast.Node) bool {
	a, ok := n.(*ast.AliasNode)
	return ok && l.aliases[a] == nil
}

// follow returns the node an alias names, charging the budget its nodes;
// nil for an alias left unresolved.
func (l *loader) follow(a *ast.AliasNode) ast.Node {
	target := l.aliases[a]
	if target == nil {
		return nil
	}
	if l.expanded += l.anchorNodes(target); l.expanded > ConfigMaxExpandedNodes {
		l.errorf(a, fmt.Sprintf("the configuration expands to more than %d nodes (aliases or merge keys), past the limit at alias *%s",
			ConfigMaxExpandedNodes, Shorten(a.Value.GetToken().Value, quoteMax)),
			"each use of an alias copies its anchor, and nested aliases multiply; write the values out or nest fewer aliases")
		panic(stopDecoding{})
	}
	return target
}

// anchorNodes counts the nodes of an anchor's node, aliases not
// followed, once per anchor.
func (l *loader) anchorNodes(n ast.Node) int {
	if c, ok := l.sizes[n]; ok {
		return c
	}
	c := l.nodes(n)
	l.sizes[n] = c
	return c
}

// nodes counts the nodes of n, aliases not followed.
func (l *loader) nodes(n ast.Node) int {
	switch v := n.(type) {
	case nil:
		return 0
	case *ast.AliasNode:
		return 1
	case *ast.AnchorNode:
		return 1 + l.anchorNodes(v.Value) // an anchor inside another: counted once
	case *ast.MappingNode, *ast.MappingValueNode, *ast.MappingKeyNode, *ast.SequenceNode, *ast.TagNode:
		c := 1
		for _, ch := range children(n) {
			c += l.nodes(ch)
		}
		return c
	}
	return 1 + len(scalarText(n))/textPerNode
}
