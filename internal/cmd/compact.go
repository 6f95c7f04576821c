package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/yurthub/yurthub/internal/admin"
	"github.com/yurthub/yurthub/internal/store"
)

func compactCommand() *cli.Command {
	return &cli.Command{
		Name:  "compact",
		Usage: "shrink a stopped node's cache file: copy what it holds into a new file without the free pages and rename it over the old one",
		Description: "bbolt reuses freed pages but never returns them, so the file keeps the size of the most it ever held.\n" +
			"The running daemon compacts at start when the free pages exceed half the file and 64 MiB; this command\n" +
			"compacts now, whatever their size, on a stopped node (it refuses while a yurthub answers on the admin socket).\n" +
			"A crash at any moment leaves the old file or the new one, complete. `hubctl inspect` shows the reclaimable bytes.",
		Flags:        cacheTargetFlags(),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("compact takes no arguments, got %q", c.Args().First())}
			}
			t := cacheTarget(c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			running := admin.DaemonAnswers(ctx, t.Socket)
			cancel()
			if running {
				return fmt.Errorf("a yurthub is running on %s (its admin socket %s answers): stop it first (systemctl stop yurthub), or restart it to let it compact at start", t.CacheFile, t.Socket)
			}
			if _, err := os.Stat(t.CacheFile); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no cache at %s: wrong --root-dir / --cache-file?", t.CacheFile)
			}
			res, err := store.Compact(t.CacheFile, store.CompactOptions{Force: true, LockTimeout: 2 * time.Second})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "compacted %s: %d -> %d bytes (%d reclaimed) in %s\n", t.CacheFile,
				res.SizeBefore, res.SizeAfter, res.SizeBefore-res.SizeAfter, res.Took.Round(time.Millisecond))
			return nil
		},
	}
}
