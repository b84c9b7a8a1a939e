// Command controller-gen is Chartproof's build of controller-tools' CRD generator: the same "crd"
// generator and output rules as upstream controller-gen, and the same argument syntax
// (controller-gen crd[:OPTION=VALUE,...] paths=PATTERN output:crd:dir=DIR), with only the CRD generator
// linked. It exists as a tool of our own so that it can report the pinned version: a controller-gen
// built from a wrapper module reports "(devel)".
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/controller-tools/pkg/crd"
	"sigs.k8s.io/controller-tools/pkg/genall"
	"sigs.k8s.io/controller-tools/pkg/markers"
)

// version is set at build time (-X main.version=...): the controller-tools version linked.
var version = "unset"

func registry() (*markers.Registry, error) {
	reg := &markers.Registry{}
	def, err := markers.MakeDefinition("crd", markers.DescribesPackage, crd.Generator{})
	if err != nil {
		return nil, err
	}
	if err := reg.Register(def); err != nil {
		return nil, err
	}
	rules := map[string]genall.OutputRule{
		"dir":       genall.OutputToDirectory(""),
		"stdout":    genall.OutputToStdout,
		"none":      genall.OutputToNothing,
		"artifacts": genall.OutputArtifacts{},
	}
	for name, rule := range rules {
		for _, prefix := range []string{"output:crd:", "output:"} {
			def, err := markers.MakeDefinition(prefix+name, markers.DescribesPackage, rule)
			if err != nil {
				return nil, err
			}
			if err := reg.Register(def); err != nil {
				return nil, err
			}
		}
	}
	return reg, genall.RegisterOptionsMarkers(reg)
}

func main() {
	args := os.Args[1:]
	if len(args) == 1 && (args[0] == "--version" || args[0] == "version") {
		fmt.Printf("controller-gen (chartproof, crd generator only) %s\n", version)
		return
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: controller-gen crd[:OPTION=VALUE,...] paths=PATTERN|{P1,P2} output:crd:dir=DIR")
		os.Exit(2)
	}
	reg, err := registry()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller-gen:", err)
		os.Exit(1)
	}
	rt, err := genall.FromOptions(reg, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller-gen:", err)
		os.Exit(2)
	}
	if len(rt.Generators) == 0 {
		fmt.Fprintln(os.Stderr, "controller-gen: no generator given (this build has only: crd)")
		os.Exit(2)
	}
	if failed := rt.Run(); failed {
		fmt.Fprintln(os.Stderr, "controller-gen: not all generators ran successfully")
		os.Exit(1)
	}
}
