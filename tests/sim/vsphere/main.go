// vspheresim: govmomi's vCenter simulator on 127.0.0.1 with TLS, for libhypersdk's tests.
//
// It prints one JSON line on stdout once it serves ({"url", "ca_file", "thumbprint", ...}) and
// runs until its standard input closes or it gets SIGTERM/SIGINT, so a test that dies never
// leaves it behind. The password comes from an environment variable, never from argv.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (tests pass port 0 for a free port)")
	username := flag.String("username", "user", "the one user name Login accepts")
	passwordEnv := flag.String("password-env", "VSPHERESIM_PASSWORD", "environment variable holding the password Login accepts")
	certDir := flag.String("cert-dir", "", "folder for the server certificate (cert.pem); required")
	esx := flag.Bool("esx", false, "simulate a standalone ESXi host (lease URLs then carry a '*' host)")
	quiet := flag.Bool("quiet", true, "silence the simulator's own log")
	hosts := flag.Int("standalone-host", 0, "standalone ESX hosts per datacenter (0: the model's default, 1 for vCenter; DC0_H0, DC0_H1, ...)")
	vms := flag.Int("vm", 0, "VMs per standalone host and per cluster (0: the model's default, 2; DC0_H0_VM0, DC0_H0_VM1, ...)")
	flag.Parse()

	password := os.Getenv(*passwordEnv)
	if password == "" || *certDir == "" {
		fmt.Fprintln(os.Stderr, "vspheresim: -cert-dir and a password in $"+*passwordEnv+" are required")
		os.Exit(2)
	}
	if *quiet {
		log.SetOutput(discard{})
	}

	model := simulator.VPX()
	if *esx {
		model = simulator.ESX()
	}
	if *hosts > 0 && !*esx {
		model.Host = *hosts
	}
	if *vms > 0 {
		model.Machine = *vms
	}
	if err := model.Create(); err != nil {
		fatal(err)
	}
	defer model.Remove()

	tlsConfig, thumbprint, err := makeTLS(*certDir)
	if err != nil {
		fatal(err)
	}
	sim := newExtensions(model)
	model.Service.TLS = tlsConfig
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, password)}
	// Registered before NewServer adds its own routes: "GET /nfc/" is more specific than the
	// simulator's "/nfc/", so downloads come here and uploads still go to the simulator.
	model.Service.ServeMux = http.NewServeMux()
	model.Service.ServeMux.HandleFunc("GET /nfc/", sim.serveNFC)
	model.Service.ServeMux.HandleFunc("GET /folder/", sim.serveDatastore)
	model.Service.ServeMux.HandleFunc("/_hsdk/control", sim.serveControl)
	model.Service.ServeMux.HandleFunc("/_hsdk/state", sim.serveState)

	server := model.Service.NewServer()
	defer server.Close()

	u := *server.URL
	u.User = nil
	ready := map[string]any{
		"url":        u.String(),
		"host":       u.Host,
		"ca_file":    certFile(*certDir),
		"thumbprint": thumbprint,
		"username":   *username,
		"esx":        *esx,
		"pid":        os.Getpid(),
	}
	line, _ := json.Marshal(ready)
	fmt.Println(string(line))

	done := make(chan struct{})
	go func() {
		// EOF on stdin: the parent is gone.
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		close(done)
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-done:
	case <-sigs:
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vspheresim:", err)
	os.Exit(1)
}
