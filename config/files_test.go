package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func tlsYAML(certFile, keyFile string) string {
	return "listeners:\n  - address: 127.0.0.1:1143\n  - address: 0.0.0.0:993\n    tls: implicit\n" +
		"tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n" +
		"upstream:\n  address: imap.example.com:993\n"
}

func TestTLSKeyPair(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := writeKeyPair(t, dir, "a.example")
	_, keyB := writeKeyPair(t, dir, "b.example")
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, "not pem at all\n")

	t.Run("valid pair", func(t *testing.T) {
		c := mustParse(t, tlsYAML(certA, keyA))
		if c.TLS.CertFile != certA || c.TLS.KeyFile != keyA {
			t.Errorf("got tls %+v, want cert %s key %s", c.TLS, certA, keyA)
		}
		if got := c.Listeners[1]; got.TLS != TLSImplicit || got.InsecureAuth {
			t.Errorf("got listener %+v, want implicit TLS without insecure auth", got)
		}
	})
	t.Run("cert and key configured without tls listeners", func(t *testing.T) {
		c := mustParse(t, base+"tls:\n  cert_file: "+certA+"\n  key_file: "+keyA+"\n")
		if c.TLS.CertFile != certA {
			t.Errorf("got cert_file %q, want %q", c.TLS.CertFile, certA)
		}
	})

	tests := []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"mismatched key", certA, keyB, []string{"tls.key_file: " + keyB + " does not go with tls.cert_file " + certA + ": tls: private key does not match public key"}},
		{"cert is not PEM", garbage, keyA, []string{"tls.cert_file: no PEM certificate found in " + garbage}},
		{"key is not PEM", certA, garbage, []string{"tls.key_file: " + garbage + " does not go with tls.cert_file " + certA + ": tls: failed to find any PEM data in key input"}},
		{"key given as cert", keyA, keyA, []string{"tls.cert_file: no PEM certificate found in " + keyA}},
		{"cert missing", filepath.Join(dir, "nope.crt"), keyA, []string{"tls.cert_file: open " + filepath.Join(dir, "nope.crt") + ": no such file or directory"}},
		{"key is a directory", certA, dir, []string{"tls.key_file: read " + dir + ": is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tlsYAML(tt.cert, tt.key)))
			if got := problemsOf(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStartTLSListenerNeedsCert(t *testing.T) {
	yaml := "listeners:\n  - address: 0.0.0.0:143\n    tls: starttls\nupstream:\n  address: a:1\n"
	_, err := Parse([]byte(yaml))
	want := []string{"tls.cert_file: required by listeners[0].tls: starttls", "tls.key_file: required by listeners[0].tls: starttls"}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	ca, key := writeKeyPair(t, dir, "ca.example")
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, "-----BEGIN NOTHING-----\n")
	tests := []struct {
		name string
		file string
		want []string // nil: valid
	}{
		{"valid", ca, nil},
		{"not a certificate", key, []string{"upstream.ca_file: no PEM certificates found in " + key}},
		{"garbage", garbage, []string{"upstream.ca_file: no PEM certificates found in " + garbage}},
		{"missing", filepath.Join(dir, "missing.pem"), []string{"upstream.ca_file: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(base + "  ca_file: " + tt.file + "\n"))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if c.Upstream.CAFile != tt.file {
					t.Errorf("got ca_file %q, want %q", c.Upstream.CAFile, tt.file)
				}
				return
			}
			if got := problemsOf(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, base)
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, base+"  idle_refersh: 1m\n")
	missing := filepath.Join(dir, "missing.yaml")

	t.Run("valid file", func(t *testing.T) {
		c, err := Load(good)
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		if c.Upstream.Address != "imap.example.com:993" {
			t.Errorf("got upstream address %q, want %q", c.Upstream.Address, "imap.example.com:993")
		}
	})
	t.Run("missing file names the path", func(t *testing.T) {
		_, err := Load(missing)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("got error %v, want one naming %s", err, missing)
		}
	})
	t.Run("invalid file names the path and the key", func(t *testing.T) {
		_, err := Load(bad)
		want := "config " + bad + `: upstream.idle_refersh: unknown key (did you mean "idle_refresh"?) (line 5)`
		if err == nil || err.Error() != want {
			t.Errorf("got error %v, want %q", err, want)
		}
	})
}
