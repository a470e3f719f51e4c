package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	"github.com/kafkachat/kafkachat/pkg/config"
	"github.com/kafkachat/kafkachat/pkg/procs"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// loadCompose loads docker-compose.yml with the compose-spec loader, as
// docker compose does.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"}, cli.WithName("kafkachat"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return p
}

func env(t *testing.T, svc types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := svc.Environment[key]
	if !ok || v == nil {
		t.Fatalf("service %s has no %s", svc.Name, key)
	}
	return *v
}

// TestComposeFile checks what no Docker engine here can run: the services,
// their wiring, ports, environment, health checks and start order.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	kafka, err := p.GetService("kafka")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(kafka.Image, "apache/kafka:4.") {
		t.Errorf("kafka image %q, want apache/kafka:4.x", kafka.Image)
	}
	if kafka.HealthCheck == nil || len(kafka.HealthCheck.Test) == 0 {
		t.Error("kafka has no healthcheck")
	}
	// Separate listeners: containers dial kafka:9092, the host localhost:29092.
	adv := env(t, kafka, "KAFKA_ADVERTISED_LISTENERS")
	for _, want := range []string{"INTERNAL://kafka:9092", "HOST://localhost:29092"} {
		if !strings.Contains(adv, want) {
			t.Errorf("KAFKA_ADVERTISED_LISTENERS %q lacks %s", adv, want)
		}
	}
	if l := env(t, kafka, "KAFKA_LISTENERS"); !strings.Contains(l, "CONTROLLER://") || env(t, kafka, "KAFKA_CONTROLLER_LISTENER_NAMES") != "CONTROLLER" {
		t.Errorf("kafka has no controller listener of its own: %q", l)
	}
	if env(t, kafka, "KAFKA_PROCESS_ROLES") != "broker,controller" {
		t.Error("kafka is not in KRaft combined mode")
	}
	checkPublished(t, kafka, 29092)
	// The data volume must be where Kafka writes, or it keeps nothing.
	logDirs := env(t, kafka, "KAFKA_LOG_DIRS")
	mounted := false
	for _, v := range kafka.Volumes {
		mounted = mounted || v.Target == logDirs
	}
	if !mounted {
		t.Errorf("KAFKA_LOG_DIRS=%s is not on a volume: %v", logDirs, kafka.Volumes)
	}

	known := settings()
	for name, port := range map[string]uint32{"ingest": 8081, "subscribe": 8082} {
		svc, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		if svc.Build == nil || svc.Build.Target != name {
			t.Errorf("%s: build target %v, want %q", name, svc.Build, name)
		}
		if got := env(t, svc, "KAFKA_BROKERS"); got != "kafka:9092" {
			t.Errorf("%s: KAFKA_BROKERS=%q, want the containers' listener kafka:9092", name, got)
		}
		if got := env(t, svc, "CHAT_LISTEN_ADDR"); got != fmt.Sprintf(":%d", port) {
			t.Errorf("%s: CHAT_LISTEN_ADDR=%q", name, got)
		}
		// Every variable given must be one the service reads: a typo would
		// otherwise be silently ignored.
		for key := range svc.Environment {
			if !readsSetting(known[name], key) {
				t.Errorf("%s: environment variable %s is not a setting of the service", name, key)
			}
		}
		checkPublished(t, svc, port)
		if dep, ok := svc.DependsOn["kafka"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: must wait for kafka to be healthy, has %v", name, svc.DependsOn)
		}
		hc := svc.HealthCheck
		if hc == nil || strings.Join(hc.Test, " ") != fmt.Sprintf("CMD /usr/local/bin/healthcheck -addr 127.0.0.1:%d", port) {
			t.Errorf("%s: healthcheck %v", name, hc)
		}
	}
	sub, _ := p.GetService("subscribe")
	if dep, ok := sub.DependsOn["ingest"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("subscribe must wait for ingest (which creates the topic) to be healthy")
	}
}

func readsSetting(vars []config.Var, key string) bool {
	for _, v := range vars {
		if v.Env == key {
			return true
		}
	}
	return false
}

func checkPublished(t *testing.T, svc types.ServiceConfig, port uint32) {
	t.Helper()
	for _, p := range svc.Ports {
		if p.Target == port && p.Published == fmt.Sprint(port) {
			return
		}
	}
	t.Errorf("%s does not publish port %d: %v", svc.Name, port, svc.Ports)
}

// TestDockerfile checks the image recipe the compose file builds: a target
// per service, a non-root user, the health probe and the entry points.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, re := range []string{
		`(?m)^FROM golang:1\.\d+\.\d+\S* AS build$`,
		`(?m)^RUN CGO_ENABLED=0 go build`,
		`(?m)^FROM gcr\.io/distroless/static\S*:nonroot AS base$`,
		`(?m)^USER 65532:65532$`,
		`(?m)^FROM base AS ingest$`,
		`(?m)^FROM base AS subscribe$`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/ingest"\]$`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/subscribe"\]$`,
		`(?m)^COPY --from=build /out/healthcheck /usr/local/bin/healthcheck$`,
		`CMD \["/usr/local/bin/healthcheck", "-addr", "127\.0\.0\.1:8081"\]`,
		`CMD \["/usr/local/bin/healthcheck", "-addr", "127\.0\.0\.1:8082"\]`,
	} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("Dockerfile does not match %s", re)
		}
	}
}

// TestComposeEnvironmentRunsServices runs the two service binaries as
// separate processes with exactly the environment docker-compose.yml gives
// their containers, except the two addresses that only exist inside
// compose's network: KAFKA_BROKERS points at the test's broker (the real
// one in CI) and the listen addresses at free loopback ports. The images'
// health probe must then report both SERVING, a message must go through,
// and SIGTERM must stop both cleanly.
func TestComposeEnvironmentRunsServices(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	p := loadCompose(t)
	b := testenv.StartBroker(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := procs.Build(ctx, dir, "./services/ingest", "./services/subscribe", "./services/healthcheck"); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	var started []*procs.Proc
	for _, name := range []string{"ingest", "subscribe"} {
		svc, _ := p.GetService(name)
		addrs[name] = freeLoopback(t)
		var environ []string
		for k, v := range svc.Environment {
			switch k {
			case "KAFKA_BROKERS":
				environ = append(environ, k+"="+b.Addrs)
			case "CHAT_LISTEN_ADDR":
				environ = append(environ, k+"="+addrs[name])
			default:
				environ = append(environ, k+"="+*v)
			}
		}
		proc, err := procs.Start(name, filepath.Join(dir, name), dir, environ, nil)
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, proc)
		t.Cleanup(func() { _ = proc.Stop(5 * time.Second) })
		testenv.Eventually(t, name+" healthy per the image's probe", func() (bool, error) {
			select {
			case <-proc.Done():
				return false, fmt.Errorf("%s exited: %v\n%s", name, proc.Err(), proc.Tail(20))
			default:
			}
			probe, err := procs.Start("healthcheck-"+name, filepath.Join(dir, "healthcheck"), dir,
				[]string{"HEALTHCHECK_ADDR=" + addrs[name]}, nil)
			if err != nil {
				return false, err
			}
			return probe.Wait(ctx) == nil, nil
		})
	}
	client, err := chatclient.New(addrs["ingest"], addrs["subscribe"])
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	room := "compose-" + testenv.RandomHex(4)
	sub, err := client.Subscribe(ctx, room, chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := client.Send(ctx, room, "alice", "hello from the compose environment")
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(ctx, sub, 1)
	if err != nil || got[0].GetPosition().GetOffset() != sent.GetPosition().GetOffset() {
		t.Fatalf("subscriber got %v, %v; want the message sent", got, err)
	}
	sub.Close()
	for _, proc := range started {
		if err := proc.Stop(20 * time.Second); err != nil {
			t.Fatalf("%s on SIGTERM: %v\n%s", proc.Name, err, proc.Tail(20))
		}
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
