'use strict';
// The messages between serve's primary and its HTTP processes (hub.js,
// front.js), sent over the cluster's IPC channel, coalesced: what one side
// sends within one turn of its event loop goes as one message. Under load an
// HTTP process reads many requests in a turn, and the primary answers many
// steps of one batched step at once; one message each cost a serialisation
// and a write apiece (measured in docs/serving.md). The channel speaks JSON
// (Node's 'advanced' serialisation cost 1.7x its CPU per message here), so
// arrays cross as their raw bytes in base64: bit-exact, as between the
// service and its model workers.
const { DTYPES } = require('../io/protocol');

const MANY = 'many';

/** {data, shape, dtype} as JSON can carry it: its bytes in base64. */
const toWire = ({ data, shape, dtype }) => ({
  bytes: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
  shape,
  dtype,
});

/** The array toWire() sent. */
function fromWire({ bytes, shape, dtype }) {
  const raw = Buffer.from(bytes, 'base64');
  const data = new DTYPES[dtype](raw.length / DTYPES[dtype].BYTES_PER_ELEMENT);
  new Uint8Array(data.buffer).set(raw); // a copy: the Buffer may be unaligned
  return { data, shape, dtype };
}

/** send(message) queued and flushed with `post` ({t: 'many', list}) once this turn ends. */
function coalesced(post) {
  let queue = null;
  return (message) => {
    if (queue) {
      queue.push(message);
      return;
    }
    queue = [message];
    setImmediate(() => {
      const list = queue;
      queue = null;
      post(list.length === 1 ? list[0] : { t: MANY, list });
    });
  };
}

/** Calls `receive` for each message of what arrived (one, or a coalesced list). */
function unpack(message, receive) {
  if (message && message.t === MANY) for (const one of message.list) receive(one);
  else receive(message);
}

module.exports = { coalesced, unpack, toWire, fromWire };
