// Package builtin registers every action type that ships with
// fraiseql-observers. Import it for its side effect wherever a
// configuration is decoded or run:
//
//	import _ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
//
// A new action type is one package under observers/action and one line
// here.
package builtin
