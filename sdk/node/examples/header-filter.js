#!/usr/bin/env node
'use strict';
// header: the Python header filter (sdk/python/examples/header_filter.py)
// on the Node SDK. Client side: adds `header = value` unless the caller
// set it. Server side: refuses calls without it (Unauthenticated) or with
// another value (PermissionDenied), except methods matching an `exempt`
// prefix. Counts the calls it lets through per method and reports the
// count in the trailer key `count_trailer` (when set).
const kp = require('../kite-plugin'); // first: it takes stdout over

class HeaderFilter {
  constructor(config) {
    this.header = config.header || '';
    this.value = config.value || '';
    if (!this.header || !this.value) throw new kp.KiteError(kp.Code.INVALID_ARGUMENT, 'header and value must be non-empty');
    this.exempt = config.exempt || [];
    this.countTrailer = config.count_trailer || '';
    this.counts = new Map();
  }

  before(call) {
    if (call.side === 'client') {
      if (!call.meta.has(this.header)) call.meta.set(this.header, this.value);
    } else if (!this.exempt.some((p) => call.method.startsWith(p))) {
      const got = call.meta.get(this.header);
      if (got === undefined) throw new kp.KiteError(kp.Code.UNAUTHENTICATED, `missing ${this.header} header`);
      if (got !== this.value) throw new kp.KiteError(kp.Code.PERMISSION_DENIED, `${this.header} "${got}" is not allowed`);
    }
    const n = (this.counts.get(call.method) || 0) + 1;
    this.counts.set(call.method, n);
    call.state.n = n;
  }

  after(call) {
    if (this.countTrailer) call.trailer.set(this.countTrailer, String(call.state.n));
  }
}

kp.serve({
  kind: 'filter', name: 'header', version: '1.0.0',
  doc: 'Adds a metadata header on the client side and requires it on the server side; counts calls.',
  schema: [
    { name: 'header', type: 'string', required: true, doc: 'metadata key, e.g. x-tenant' },
    { name: 'value', type: 'string', required: true, doc: 'the value clients send and servers require' },
    { name: 'exempt', type: 'list(string)', doc: 'method prefixes the server side lets through without the header' },
    { name: 'count_trailer', type: 'string', doc: 'trailer key reporting the running call count of the method' },
  ],
  create: (config) => new HeaderFilter(config),
});
