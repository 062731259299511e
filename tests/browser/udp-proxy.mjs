// A UDP relay between one browser and the server's media port that a test can cut and restore,
// as a classroom's network would drop out. Each browser address gets its own upstream socket,
// so the server sees one address per peer connection (as behind a NAT).

import dgram from 'node:dgram';

export class UdpCutProxy {
  /** Relay to the server's media address `target` ("ip:port"). */
  constructor(target) {
    const i = target.lastIndexOf(':');
    this.target = { host: target.slice(0, i), port: Number(target.slice(i + 1)) };
    this.cut = false;
    this.dropped = 0;
    this.relayed = 0;
    this.upstream = new Map(); // "ip:port" of a browser socket -> dgram socket towards the server
  }

  async start() {
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (packet, from) => this.#fromBrowser(packet, from));
    await new Promise((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    this.port = this.socket.address().port;
    return this;
  }

  #fromBrowser(packet, from) {
    if (this.cut) { this.dropped += 1; return; }
    const key = `${from.address}:${from.port}`;
    let up = this.upstream.get(key);
    if (!up) {
      up = dgram.createSocket('udp4');
      up.on('message', (reply) => {
        if (this.cut) { this.dropped += 1; return; }
        this.relayed += 1;
        this.socket.send(reply, from.port, from.address);
      });
      up.bind(0, '127.0.0.1');
      this.upstream.set(key, up);
    }
    this.relayed += 1;
    up.send(packet, this.target.port, this.target.host);
  }

  close() {
    for (const up of this.upstream.values()) up.close();
    this.upstream.clear();
    this.socket?.close();
  }
}
