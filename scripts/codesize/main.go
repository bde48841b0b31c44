// Command codesize fails when a Go file is over the size the project keeps
// to: no hand-written file over 600 lines, no function over 100 lines
// outside tests (a function taking a *testing.T, such as a shared suite in
// storage/storagetest, is a test). Generated files ("Code generated ... DO NOT EDIT.") are
// skipped. `just lint` runs it on the tracked and new Go files.
//
//	go run ./scripts/codesize [-max-file 600] [-max-func 100]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

var generated = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

func main() {
	maxFile := flag.Int("max-file", 600, "most lines of a hand-written file")
	maxFunc := flag.Int("max-func", 100, "most lines of a function outside tests")
	flag.Parse()
	out, err := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard", "*.go").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "codesize: git ls-files:", err)
		os.Exit(2)
	}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		problems = append(problems, check(sc.Text(), *maxFile, *maxFunc)...)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "codesize: %d problem(s); split the file or the function by what it owns\n", len(problems))
		os.Exit(1)
	}
}

func check(path string, maxFile, maxFunc int) []string {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil // deleted but still listed
	}
	if generated.Match(src) {
		return nil
	}
	var problems []string
	if n := bytes.Count(src, []byte("\n")); n > maxFile {
		problems = append(problems, fmt.Sprintf("%s: %d lines (at most %d)", path, n, maxFile))
	}
	if strings.HasSuffix(path, "_test.go") {
		return problems
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		return append(problems, fmt.Sprintf("%s: %v", path, err))
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Body == nil || takesTestingT(fn) {
			continue
		}
		start, end := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
		if n := end - start + 1; n > maxFunc {
			problems = append(problems, fmt.Sprintf("%s:%d: func %s is %d lines (at most %d)", path, start, fn.Name.Name, n, maxFunc))
		}
	}
	return problems
}

// takesTestingT reports whether fn has a *testing.T parameter.
func takesTestingT(fn *ast.FuncDecl) bool {
	for _, p := range fn.Type.Params.List {
		if star, ok := p.Type.(*ast.StarExpr); ok {
			if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "T" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "testing" {
					return true
				}
			}
		}
	}
	return false
}
