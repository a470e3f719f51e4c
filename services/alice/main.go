// Command alice chats in a room as alice: it prints the room live as
// "[user - timestamp]: message" and plays alice's side of a scripted
// conversation, or with -i sends the lines typed on standard input.
package main

import (
	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/bot"
)

func main() { app.Main(bot.Main("alice")) }
