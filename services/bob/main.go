// Command bob chats in a room as bob: it prints the room live as
// "[user - timestamp]: message" and plays bob's side of a scripted
// conversation, or with -i sends the lines typed on standard input.
package main

import (
	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/bot"
)

func main() { app.Main(bot.Main("bob")) }
