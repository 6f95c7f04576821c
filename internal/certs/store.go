package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pairStore keeps one certificate and its key the way kubelet (client-go's file
// store) and OpenYurt's hub keep theirs, so a hub swapped in on an OpenYurt node finds
// its certificates and OpenYurt finds ours:
//
//	<dir>/<prefix>-<YYYY-MM-DD-HH-MM-SS>.pem   certificate + key, mode 0600, one per issue
//	<dir>/<prefix>-current.pem                  symlink to the newest one
//
// A new pair is written to its own file and the symlink is replaced by rename, so a
// reader sees the old pair or the new one, never half of either.
type pairStore struct {
	dir    string
	prefix string
}

func (s pairStore) currentPath() string { return filepath.Join(s.dir, s.prefix+"-current.pem") }

// load reads the current pair; os.ErrNotExist (wrapped) when there is none.
func (s pairStore) load() (*tls.Certificate, error) {
	p := s.currentPath()
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PEM file with a certificate and its private key: %w", p, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return &c, nil
}

// update writes a new pair (certificate PEM, then key PEM) and makes it current.
func (s pairStore) update(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the issued certificate does not match its key: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	name := s.prefix + "-" + now.UTC().Format("2006-01-02-15-04-05") + ".pem"
	file := filepath.Join(s.dir, name)
	if err := writeFileAtomic(file, append(append([]byte{}, certPEM...), keyPEM...)); err != nil {
		return nil, err
	}
	link := s.currentPath()
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return nil, fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("link %s: %w", link, err)
	}
	return &c, nil
}

// retire moves the current pair out of the way (a new cluster CA makes it useless):
// the link is removed; the dated files stay for a person to look at.
func (s pairStore) retire() error {
	err := os.Remove(s.currentPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file and a
// rename, syncing the file first.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
