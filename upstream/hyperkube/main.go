// Command hyperkube is one binary holding every program of the upstream test
// bed: the Kubernetes control plane and node components from k8s.io/kubernetes,
// etcd, CoreDNS, metrics-server, and cri-reset (teardown's
// crictl rmp). `hyperkube NAME ARGS...` runs NAME.
//
// One binary instead of eight because linking is the slowest part of a warm
// build on two cores: each Kubernetes binary links for about a minute, and the
// packages they share are compiled once either way. Hyperkube shipped with
// Kubernetes until 1.17 on the same idea, and k3s still does it.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	_ "time/tzdata" // CronJob time zones, as the upstream mains do

	"github.com/coredns/coredns/coremain"
	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
	metricsserver "sigs.k8s.io/metrics-server/cmd/metrics-server/app"
)

// programs maps each program name to its upstream main, given the arguments
// after the name. Each returns the process's exit code.
var programs = map[string]func(args []string) int{
	"kube-apiserver": func(args []string) int {
		return runCobra(apiserver.NewAPIServerCommand(), args)
	},
	"kube-controller-manager": func(args []string) int {
		return runCobra(controllermanager.NewControllerManagerCommand(), args)
	},
	"kube-scheduler": func(args []string) int {
		return runCobra(scheduler.NewSchedulerCommand(), args)
	},
	"kubelet": func(args []string) int {
		return runCobra(kubelet.NewKubeletCommand(context.Background()), args)
	},
	"kube-proxy": func(args []string) int {
		return runCobra(proxy.NewProxyCommand(), args)
	},
	"etcd": func(args []string) int {
		// etcdmain reads os.Args itself and exits on its own.
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	},
	"coredns": func(args []string) int {
		// coremain parses the standard flag set from os.Args.
		os.Args = append([]string{"coredns"}, args...)
		coremain.Run()
		return 0
	},
	"cri-reset": criReset,
	"metrics-server": func(args []string) int {
		cmd := metricsserver.NewMetricsServerCommand(genericapiserver.SetupSignalHandler())
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil {
			return 1
		}
		return 0
	},
}

// runCobra runs an upstream component's command as its own main would.
func runCobra(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if _, ok := programs[name]; !ok && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	run, ok := programs[name]
	if !ok {
		names := make([]string, 0, len(programs))
		for n := range programs {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: hyperkube PROGRAM [ARGS...]\nprograms: %v\n", names)
		os.Exit(2)
	}
	os.Exit(run(args))
}
