// Command ingest runs the ingest service: chat.v1.IngestService over gRPC,
// writing every accepted message to Kafka. See the README for settings.
package main

import (
	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/ingest"
)

func main() { app.Main(ingest.Main) }
