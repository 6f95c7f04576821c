package daemon

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// securePermissions makes --root-dir private to the hub's user: everything under it
// is either cached data (the cache file, files moved aside, spool files) or
// credentials (pki/: client and serving keys; bootstrap material), so every
// directory and file there, the directory itself included, keeps only its owner's
// bits (0755 -> 0700, 0644 -> 0600). Each change is logged at WARN with the old and new mode; a
// change that fails (a file of another owner) is logged with the command to run.
// Symbolic links are neither followed nor changed: what they point to is not ours.
// It never fails the start: the hub's job is the node's traffic.
func securePermissions(root string, log *slog.Logger) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		log.Warn("cannot check the permissions under --root-dir", slog.String("root_dir", root), slog.Any("err", err))
		return
	}
	_ = filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			log.Warn("cannot check the permissions of a file under --root-dir", slog.String("path", path), slog.Any("err", err))
			if d != nil && d.IsDir() && path != real {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 || (!d.IsDir() && !d.Type().IsRegular()) {
			return nil // links, and sockets (hub.sock is created 0600) and other special files
		}
		info, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				log.Warn("cannot check the permissions of a file under --root-dir", slog.String("path", path), slog.Any("err", err))
			}
			return nil
		}
		mode := info.Mode().Perm()
		next := mode &^ 0o077 // the owner's bits only: 0755 -> 0700, 0644 -> 0600
		if mode == next {
			return nil
		}
		what := "file holding cached data or credentials"
		if d.IsDir() {
			what = "directory"
		}
		if err := os.Chmod(path, next); err != nil {
			log.Warn("a "+what+" under --root-dir is readable by others and cannot be narrowed; narrow it by hand",
				slog.String("path", path), slog.String("mode", mode.String()), slog.String("run", "chmod "+modeOctal(next)+" "+path), slog.Any("err", err))
			return nil
		}
		log.Warn("a "+what+" under --root-dir was readable by others: narrowed",
			slog.String("path", path), slog.String("from", modeOctal(mode)), slog.String("to", modeOctal(next)))
		return nil
	})
}

func modeOctal(m fs.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{'0', digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}
