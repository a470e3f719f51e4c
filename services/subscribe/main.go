// Command subscribe runs the subscribe service: one Kafka consumer streamed
// to any number of chat.v1.SubscribeService.Subscribe calls. See the README
// for settings.
package main

import (
	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
)

func main() { app.Main(subscribe.Main) }
