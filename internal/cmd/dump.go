package cmd

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/yurthub/yurthub/internal/admin"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/store"
)

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:  "dump",
		Usage: "print cached objects as one v1 List (JSON or YAML, as kubectl prints), filtered by component, resource, namespace and name",
		Description: "Secret data and stringData (service-account token secrets included) are shown as " + admin.Redacted + " unless --show-secrets.\n" +
			"Every object carries the annotation " + admin.ComponentAnnotation + " naming the component whose cache it came from.\n" +
			"On a running node it asks the daemon over <root-dir>/" + config.AdminSocketName + "; on a stopped node it opens the cache file read-only.",
		Flags: append(cacheTargetFlags(),
			&cli.StringFlag{Name: "component", Usage: "only this component's cache (kubelet, kube-proxy, ...)"},
			&cli.StringFlag{Name: "resource", Usage: "only this resource: pods, or pods.v1, or deployments.v1.apps"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "only this namespace"},
			&cli.StringFlag{Name: "name", Usage: "only objects of this name"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: admin.FormatJSON, Usage: "json or yaml"},
			&cli.BoolFlag{Name: "show-secrets", Usage: "print Secret data and tokens instead of " + admin.Redacted},
		),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("dump takes no arguments (use --name), got %q", c.Args().First())}
			}
			o := c.String("output")
			if o != admin.FormatJSON && o != admin.FormatYAML {
				return usageError{fmt.Errorf("--output=%q: must be json or yaml", o)}
			}
			req := admin.Request{Op: "dump", Format: o, Dump: admin.DumpOptions{
				Filter: store.Filter{
					Component: c.String("component"),
					Resource:  store.ParseResource(c.String("resource")),
					Namespace: c.String("namespace"),
					Name:      c.String("name"),
				},
				ShowSecrets: c.Bool("show-secrets"),
			}}
			return admin.Query(context.Background(), cacheTarget(c), req, c.App.Writer)
		},
	}
}
