// Command yurthub is an edge-node agent that proxies and caches the Kubernetes
// apiserver for the node's clients and keeps serving them from its cache when the
// cloud link breaks. Invoked as "hubctl" (a symlink), it is the operator tool.
package main

import (
	"os"

	"github.com/yurthub/yurthub/internal/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args, os.Stdout, os.Stderr))
}
