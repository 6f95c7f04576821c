package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// defaultRouteIPv4 is the node's IP when --node-ip is not given: the first IPv4
// address of the interface that carries the IPv4 default route (/proc/net/route).
func defaultRouteIPv4() (net.IP, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags ... Mask: the default route has
		// destination and mask 00000000.
		if len(fields) < 8 || fields[1] != "00000000" || fields[7] != "00000000" {
			continue
		}
		ifc, err := net.InterfaceByName(fields[0])
		if err != nil {
			return nil, err
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.To4(), nil
			}
		}
		return nil, fmt.Errorf("interface %s of the default route has no IPv4 address", fields[0])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no IPv4 default route")
}
