"""A real sse_widget EventServer for the JS tests, driven over stdin.

Prints one JSON line {"url", "port", "key"} once it listens, then reads JSON lines:
["create", name] makes a stream, ["send", name, data, event] publishes, and each command
is answered with one JSON line (the id, or null).
"""

import json
import sys

from sse_widget.server import EventServer

server = EventServer().start()
channels = {}
print(json.dumps({"url": server.local_url, "port": server.port, "key": server.key}), flush=True)
for line in sys.stdin:
    cmd, *args = json.loads(line)
    reply = None
    if cmd == "create":
        channels[args[0]] = server.create_channel(args[0])
    elif cmd == "send":
        name, data, event = args
        reply = channels[name].publish(data, event)
    elif cmd == "close":
        server.remove_channel(args[0])
    print(json.dumps(reply), flush=True)
server.stop()
