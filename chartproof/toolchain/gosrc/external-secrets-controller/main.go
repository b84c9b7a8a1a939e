// Command external-secrets-controller is the External Secrets Operator's controller (ESO's own cobra
// root command: the ExternalSecret, SecretStore, ClusterSecretStore, ClusterExternalSecret, PushSecret
// and GeneratorState reconcilers) built by Chartproof to run out of cluster against a test cluster:
// it reads $KUBECONFIG, and has no webhook or cert controller running (those are subcommands of the
// same root, never started here). The only addition is --version, which prints the pinned version.
//
// At the pinned ESO release (v0.20.x) the controller packages themselves blank-import every provider
// (pkg/provider/register), so linking the controllers links every provider; ESO selects providers with
// build tags only from v1.0 on, whose provider modules the Go module proxy reachable here does not serve.
package main

import (
	"fmt"
	"os"

	"github.com/external-secrets/external-secrets/cmd/controller"
)

// version is set at build time (-X main.version=...): the External Secrets release linked.
var version = "unset"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Printf("external-secrets-controller (chartproof build of github.com/external-secrets/external-secrets) %s\n", version)
		return
	}
	controller.Execute()
}
