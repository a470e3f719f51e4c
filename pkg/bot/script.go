package bot

// Line is one turn of the scripted conversation.
type Line struct {
	Speaker string
	Text    string
}

// Conversation is the conversation alice and bob play by default: each
// speaks when the line before theirs has appeared in the room.
var Conversation = []Line{
	{"alice", "Hi Bob! Is the new chat service up?"},
	{"bob", "Hey Alice, it is. Every message goes through Kafka now."},
	{"alice", "So if we both type at once, who wins?"},
	{"bob", "Kafka decides: one room is one partition, so everyone sees the same order."},
	{"alice", "Nice. And the timestamps?"},
	{"bob", "Stamped by the server when Kafka takes the message, not by our clocks."},
	{"alice", "Unicode too? ☕ مرحبا 👋"},
	{"bob", "Byte for byte. ☕ back at you 🎉"},
	{"alice", "Great, see you at the retro."},
	{"bob", "See you there. Bye!"},
}
