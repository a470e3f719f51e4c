package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/kafkachat/kafkachat/pkg/bot"
	"github.com/kafkachat/kafkachat/pkg/config"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
)

// TestReadmeDocumentsEverySetting: the README's configuration table names
// every environment variable and flag the binaries read, so the table
// cannot fall behind the code.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, vars := range settings() {
		for _, v := range vars {
			if !strings.Contains(string(readme), "`"+v.Env+"`") || !strings.Contains(string(readme), "`-"+v.Flag+"`") {
				t.Errorf("%s: README's table lacks %s / -%s", name, v.Env, v.Flag)
			}
		}
	}
}

// settings lists what each binary reads, as its config registers it.
func settings() map[string][]config.Var {
	var ic ingest.Config
	var sc subscribe.Config
	var bc bot.Config
	sets := map[string]*config.Set{"ingest": config.New("ingest"), "subscribe": config.New("subscribe"), "bot": config.New("bot")}
	ic.Register(sets["ingest"])
	ic.ServiceConfig.Register(sets["ingest"], ingest.DefaultListen)
	sc.Register(sets["subscribe"])
	sc.ServiceConfig.Register(sets["subscribe"], subscribe.DefaultListen)
	bc.Register(sets["bot"], "alice")
	out := map[string][]config.Var{}
	for name, set := range sets {
		out[name] = set.Vars()
	}
	return out
}
