// vcsim for Snapvisor's VMware lab: govmomi's simulator (Debian's library has no vcsim main).
// Prints one line `VCSIM_READY {json}` on stdout once it serves, and stops on SIGTERM/SIGINT
// or, with -stdin-watch, when its stdin closes (so a crashed parent cannot leave it behind).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0: a free port, printed in the ready line)")
	user := flag.String("username", "user", "login user name (checked exactly)")
	// The password may come from the environment so that it does not show in `ps`.
	defaultPass, fromEnv := os.LookupEnv("VCSIM_PASSWORD")
	if !fromEnv {
		defaultPass = "pass"
	}
	pass := flag.String("password", defaultPass, "login password, checked exactly (default: $VCSIM_PASSWORD, else \"pass\")")
	plain := flag.Bool("http", false, "serve plain HTTP instead of TLS")
	certFile := flag.String("tls-cert", "", "PEM certificate to serve; generated with -tls-key when the file does not exist (empty: vcsim's built-in test certificate)")
	keyFile := flag.String("tls-key", "", "PEM private key belonging to -tls-cert")
	certOut := flag.String("cert-out", "", "write the served certificate (PEM) to this file, for clients to pin")
	stdinWatch := flag.Bool("stdin-watch", false, "exit when stdin reaches EOF")
	model := simulator.VPX()
	flag.IntVar(&model.Datacenter, "dc", model.Datacenter, "datacenters")
	flag.IntVar(&model.Cluster, "cluster", model.Cluster, "clusters per datacenter")
	flag.IntVar(&model.ClusterHost, "host", model.ClusterHost, "hosts per cluster")
	flag.IntVar(&model.Host, "standalone-host", model.Host, "standalone hosts per datacenter")
	flag.IntVar(&model.Machine, "vm", model.Machine, "VMs per resource pool (each cluster and each standalone host has one)")
	flag.IntVar(&model.Datastore, "ds", model.Datastore, "datastores")
	flag.Parse()
	// Passwords come from the parent process; a blank one would make vcsim accept any login.
	if *user == "" || *pass == "" {
		fail("-username and -password must not be empty")
	}

	if err := model.Create(); err != nil {
		fail("create model: %v", err)
	}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	if !*plain {
		model.Service.TLS = new(tls.Config)
		if *certFile != "" {
			cert, err := loadOrCreateCert(*certFile, *keyFile)
			if err != nil {
				fail("tls: %v", err)
			}
			model.Service.TLS.Certificates = []tls.Certificate{cert}
		}
	}
	server := model.Service.NewServer()

	ready := map[string]interface{}{"pid": os.Getpid(), "vms": model.Count().Machine}
	u := *server.URL
	u.User = nil
	ready["url"] = u.String()
	if !*plain && *certOut != "" {
		block := &pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw}
		if err := os.WriteFile(*certOut, pem.EncodeToMemory(block), 0o644); err != nil {
			fail("write %s: %v", *certOut, err)
		}
		ready["certFile"] = *certOut
	}
	line, _ := json.Marshal(ready)
	fmt.Printf("VCSIM_READY %s\n", line)

	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGTERM, syscall.SIGINT)
	if *stdinWatch {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			done <- syscall.SIGTERM
		}()
	}
	<-done
	server.Close()
	model.Remove()
}

// loadOrCreateCert keeps one certificate per lab directory: a restarted vcsim serves the
// certificate its clients already pinned, while two labs never share one (unlike the built-in).
func loadOrCreateCert(certFile, keyFile string) (tls.Certificate, error) {
	if keyFile == "" {
		return tls.Certificate{}, fmt.Errorf("-tls-cert needs -tls-key")
	}
	if _, err := os.Stat(certFile); err == nil {
		return tls.LoadX509KeyPair(certFile, keyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim.snapvisor.test", Organization: []string{"Snapvisor lab"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDer, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDer}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "vcsim: "+format+"\n", args...)
	os.Exit(1)
}
