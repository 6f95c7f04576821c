package cmd

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/yurthub/yurthub/internal/config"
)

type cliContext = cli.Context

// configSnapshot is the comparable part of a Config that TestValidFlagsGiveConfig checks.
type configSnapshot struct {
	servers, node, lb, orgs string
	dummy                   bool
	interval                string
	verbosity               int
	cache                   string
}

func snapshot(c *config.Config) *configSnapshot {
	var s []string
	for _, u := range c.ServerAddrs {
		s = append(s, u.String())
	}
	return &configSnapshot{
		servers: strings.Join(s, ","), node: c.NodeName, lb: c.LBMode,
		orgs: strings.Join(c.HubCertOrganizations, ","), dummy: c.EnableDummyIf,
		interval: c.HeartbeatInterval.String(), verbosity: c.Verbosity, cache: c.CacheFile(),
	}
}
