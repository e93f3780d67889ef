// girok/1 over WebTransport from a real browser: Debian's Chromium, driven by playwright-core.
//
//   node webtransport.mjs NODE_MODULES CHROMIUM BASE_URL QUIC_PORT SHA256 TOKEN ROOM PROTO_DIR SHOTS
//
// A blank page served from loopback (a secure context) opens
// `new WebTransport("https://127.0.0.1:QUIC_PORT/girok/1", { serverCertificateHashes })`, the
// certificate pinned by the hash girok publishes; the browser carries the bytes, and this
// script encodes and decodes the protobuf frames (protobufjs, from girok's .proto files), as
// docs/quic.md describes them. Prints READY once signed in and subscribed to chat:ROOM,
// `ACK <seq>` for its own message, then `GOT <seq> <body>` for the next message of someone
// else, and exits 0. Screenshots go to SHOTS.

import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';

const [nodeModules, chromiumPath, base, quicPort, sha256, token, room, protoDir, shots] =
  process.argv.slice(2);
const require = createRequire(path.join(nodeModules, 'noop.js'));
const { chromium } = require('playwright-core');
const protobuf = require('protobufjs');

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(protoDir, target);
root.loadSync(['girok/v1/events.proto', 'girok/quic/v1/frames.proto']);
const ClientFrame = root.lookupType('girok.quic.v1.ClientFrame');
const ServerFrame = root.lookupType('girok.quic.v1.ServerFrame');

const encode = (frame) => Array.from(ClientFrame.encodeDelimited(ClientFrame.create(frame)).finish());

function fail(message) {
  console.error(message);
  process.exit(1);
}

const pageServer = await new Promise((resolve) => {
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<!doctype html><title>girok/1 over WebTransport</title><p>girok/1 over WebTransport');
  });
  server.listen(0, '127.0.0.1', () =>
    resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
});

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--no-sandbox', '--disable-gpu'],
});
const timer = setTimeout(() => fail('timed out'), 60_000);
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`page: ${message.text()}`));
  // A blank page of the test's own, served from loopback (a secure context, in the same
  // local address space as girok: girok's API answers carry a CSP that allows no
  // connections, rightly, and a page Chromium did not load from loopback may not reach it).
  await page.goto(pageServer.url);
  const hash = Array.from(Buffer.from(sha256, 'hex'));
  await page.evaluate(async ({ url, hash }) => {
    const wt = new WebTransport(url, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: new Uint8Array(hash) }],
    });
    await wt.ready;
    const control = await wt.createBidirectionalStream();
    const girok = { wt, writer: control.writable.getWriter(), received: [], closed: null };
    window.girok = girok;
    wt.closed.then((info) => { girok.closed = JSON.stringify(info); },
                   (error) => { girok.closed = String(error); });
    const pump = async (name, readable) => {
      const reader = readable.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) { girok.received.push([name, null]); return; }
        girok.received.push([name, Array.from(value)]);
      }
    };
    pump('control', control.readable);
    (async () => {
      const incoming = wt.incomingUnidirectionalStreams.getReader();
      for (let n = 0; ; n++) {
        const { value, done } = await incoming.read();
        if (done) return;
        pump(`stream${n}`, value);
      }
    })();
  }, { url: `https://127.0.0.1:${quicPort}/girok/1`, hash });
  await page.screenshot({ path: path.join(shots, 'webtransport-connected.png') });

  const buffers = new Map();
  const frames = [];
  // The frames that arrived since the last look, cut out of each stream by their length.
  async function poll() {
    const { received, closed } = await page.evaluate(() => ({
      received: window.girok.received.splice(0),
      closed: window.girok.closed,
    }));
    for (const [stream, bytes] of received) {
      if (bytes === null) continue;
      const buffer = Buffer.concat([buffers.get(stream) ?? Buffer.alloc(0), Buffer.from(bytes)]);
      let offset = 0;
      for (;;) {
        const reader = protobuf.Reader.create(buffer.subarray(offset));
        let length;
        try { length = reader.uint32(); } catch { break; }
        if (buffer.length - offset < reader.pos + length) break;
        const body = buffer.subarray(offset + reader.pos, offset + reader.pos + length);
        frames.push([stream, ServerFrame.decode(body)]);
        offset += reader.pos + length;
      }
      buffers.set(stream, buffer.subarray(offset));
    }
    if (closed && frames.length === 0) fail(`the session closed: ${closed}`);
  }
  async function next(test) {
    for (;;) {
      while (frames.length) {
        const [stream, frame] = frames.shift();
        if (frame.error) fail(`error frame on ${stream}: ${frame.error.code} ${frame.error.message}`);
        if (test(stream, frame)) return [stream, frame];
      }
      await poll();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  const send = (frame) => page.evaluate((bytes) => window.girok.writer.write(new Uint8Array(bytes)), encode(frame));

  await send({ auth: { token } });
  await next((stream, frame) => stream === 'control' && frame.welcome);
  await send({ subscribe: { topic: `chat:${room}` } });
  const [events] = await next((stream, frame) => stream !== 'control' && frame.subscribed);
  console.log('READY');
  await send({ send: { ref: 'wt1', roomId: room, body: 'hello from chromium', clientId: 'wt-1' } });
  const [, acked] = await next((stream, frame) => stream === 'control' && frame.ack?.ref === 'wt1');
  console.log(`ACK ${acked.ack.seq}`);
  const [, got] = await next((stream, frame) =>
    stream === events && frame.event?.envelope?.messageSent &&
    frame.event.envelope.messageSent.body !== 'hello from chromium');
  await page.screenshot({ path: path.join(shots, 'webtransport-received.png') });
  console.log(`GOT ${got.event.seq} ${got.event.envelope.messageSent.body}`);
} finally {
  clearTimeout(timer);
  await browser.close();
  pageServer.server.close();
}
