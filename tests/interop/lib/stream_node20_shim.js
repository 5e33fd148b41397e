'use strict'
// ilp-protocol-stream 2.7.1 (the latest release) assigns `this.closed = false` in the
// DataAndMoneyStream constructor. Since Node 18, stream.Duplex has a getter-only `closed`
// property, so that assignment throws "Cannot set property closed of #<Readable> which has only
// a getter" and no stream can be created. We give the subclass its own plain accessor backed by
// a private field, which restores the Node <= 16 behaviour the library was written for. Node's
// stream internals read `_readableState.closed`/`_writableState.closed`, never this property.
const { DataAndMoneyStream } = require('ilp-protocol-stream')

function inheritedDescriptor (proto, name) {
  for (let p = proto; p; p = Object.getPrototypeOf(p)) {
    const d = Object.getOwnPropertyDescriptor(p, name)
    if (d) return d
  }
  return undefined
}

const inherited = inheritedDescriptor(DataAndMoneyStream.prototype, 'closed')
if (inherited && inherited.get && !inherited.set) {
  const slot = Symbol('ilpStreamClosed')
  Object.defineProperty(DataAndMoneyStream.prototype, 'closed', {
    configurable: true,
    get () { return this[slot] === true },
    set (value) { this[slot] = !!value }
  })
}

module.exports = { DataAndMoneyStream }
