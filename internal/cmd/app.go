// Package cmd is the command line: the yurthub daemon (OpenYurt-compatible flags)
// and the hubctl operator tool. main.go calls Main; one file per subcommand.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/daemon"
	"github.com/yurthub/yurthub/internal/logging"
	"github.com/yurthub/yurthub/internal/version"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the daemon or a command failed
	ExitUsage = 2 // the command line is wrong
)

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs the program as named by args[0]: "hubctl" is the operator tool, any
// other name is the yurthub daemon (with hubctl's commands as subcommands too).
func Main(args []string, stdout, stderr io.Writer) int {
	name := filepath.Base(args[0])
	var app *cli.App
	if name == "hubctl" {
		app = hubctlApp(stdout, stderr)
	} else {
		app = yurthubApp(stdout, stderr)
	}
	err := app.Run(args)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", app.Name, err)
	var ue usageError
	var fe *config.FlagError
	if errors.As(err, &ue) || errors.As(err, &fe) {
		return ExitUsage
	}
	return ExitError
}

func init() {
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit"}
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "%s version %s\n", c.App.Name, version.Version)
	}
}

func onUsageError(_ *cli.Context, err error, _ bool) error {
	return usageError{fmt.Errorf("%w (see --help)", err)}
}

func yurthubApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "yurthub",
		Usage:           "edge-node proxy and cache for the Kubernetes apiserver (OpenYurt YurtHub compatible)",
		Version:         version.Version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags:           daemonFlags(),
		OnUsageError:    onUsageError,
		Action:          runDaemon,
		Commands:        hubctlCommands(),
		ExitErrHandler:  func(*cli.Context, error) {}, // Main prints errors and picks the exit code
	}
}

func hubctlApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "hubctl",
		Usage:           "look into a yurthub node's cache (works on a stopped or a running hub)",
		Version:         version.Version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    onUsageError,
		Commands:        hubctlCommands(),
		ExitErrHandler:  func(*cli.Context, error) {},
	}
}

// hubctlCommands are the operator subcommands, one file each.
func hubctlCommands() []*cli.Command {
	return []*cli.Command{inspectCommand(), dumpCommand(), compactCommand()}
}

func runDaemon(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: yurthub takes only flags (see --help)", c.Args().First())}
	}
	cfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	log := logging.New(c.App.ErrWriter, cfg.LogFormat, cfg.Verbosity)
	logging.RouteKlog(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal during the graceful shutdown ends the process at once.
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
		<-again
		log.Error("second signal, exiting without waiting for shutdown")
		os.Exit(ExitError)
	}()
	return daemon.Run(ctx, cfg, log)
}
