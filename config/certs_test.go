package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/idlemux/idlemux/internal/testcert"
)

// writeKeyPair writes a self-signed certificate and its key into dir and
// returns their paths.
func writeKeyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	testcert.Write(t, certFile, keyFile, name, name)
	return certFile, keyFile
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
