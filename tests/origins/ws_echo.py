"""A `websockets` echo server as an origin for tests/streams.rs: answers every message with
`echo:<message>`. It sends no pings (ping_interval=None), so an idle connection is really idle
and only a proxy's timeout can end it. Binds 127.0.0.1 port 0 and prints `PORT <n>` on stdout
once it listens."""

import asyncio

from websockets.asyncio.server import serve


async def echo(websocket):
    async for message in websocket:
        await websocket.send(f"echo:{message}")


async def main():
    async with serve(echo, "127.0.0.1", 0, ping_interval=None, ping_timeout=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
