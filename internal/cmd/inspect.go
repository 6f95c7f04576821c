package cmd

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/yurthub/yurthub/internal/admin"
	"github.com/yurthub/yurthub/internal/config"
)

// cacheTargetFlags locate the cache: the running daemon's admin socket under
// --root-dir, or the file itself.
func cacheTargetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "root-dir", Value: config.DefaultRootDir, Usage: "the hub's --root-dir (its admin socket " + config.AdminSocketName + " and cache file " + config.CacheFileName + " live there)"},
		&cli.StringFlag{Name: "cache-file", Usage: "a cache file to read directly (default <root-dir>/" + config.CacheFileName + "); the admin socket next to it is tried first"},
	}
}

func cacheTarget(c *cli.Context) admin.Target {
	cfg := config.Config{RootDir: c.String("root-dir")}
	t := admin.Target{Socket: cfg.AdminSocket(), CacheFile: cfg.CacheFile()}
	if f := c.String("cache-file"); f != "" {
		t.CacheFile = f
		t.Socket = filepath.Join(filepath.Dir(f), config.AdminSocketName)
	}
	return t
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "show what the cache holds: objects and bytes per component and resource, each list view's resourceVersion and sync time, schema version, file size and free pages",
		Description: "Acts on the cache's meaning (components, resources, list views), not on bbolt pages.\n" +
			"On a running node it asks the daemon over <root-dir>/" + config.AdminSocketName + "; on a stopped node it opens the cache file read-only.",
		Flags: append(cacheTargetFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: admin.FormatText, Usage: "text or json"}),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("inspect takes no arguments, got %q", c.Args().First())}
			}
			o := c.String("output")
			if o != admin.FormatText && o != admin.FormatJSON {
				return usageError{fmt.Errorf("--output=%q: must be text or json", o)}
			}
			return admin.Query(context.Background(), cacheTarget(c), admin.Request{Op: "inspect", Format: o}, c.App.Writer)
		},
	}
}
