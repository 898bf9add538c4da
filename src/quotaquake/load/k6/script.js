// quotaquake's k6 scenario (quotaquake.load.k6.plan prepends `const QQ = {...}` and `function qqPicks()`).
//
// Each iteration sends one request: the (caller, endpoint) pair number iterationInTest of the pick cycle
// that quotaquake drew from the scenario's traffic mix. Before the request the VU's metadata carries
// `qq=<iteration>`, so every built-in sample of the request (http_reqs: end time, status) names it; after
// the response one `qq_response` sample carries the record quotaquake turns into a history row:
//   iteration~scenario start (epoch ms)~status~error code~latency ms~error~<QQ.headers values...>
// latency: from asking for a connection to the response's end (blocked + duration; on a new connection
// connecting + TLS instead of blocked, which would count the gap after the dial twice).
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { SharedArray } from 'k6/data';

export const options = QQ.options;

const PICKS = new SharedArray('qq-picks', qqPicks);
const ENDPOINTS = QQ.endpoints.length;
const responses = new Counter('qq_response');
const expected = http.expectedStatuses(...QQ.expected);
const params = QQ.callers.map((caller) =>
  QQ.endpoints.map((endpoint) => ({
    headers: endpoint.body === null ? caller.headers : caller.json_headers,
    tags: { name: endpoint.path },
    timeout: QQ.timeout,
    responseCallback: expected,
  })),
);

function encoded(value) {
  return encodeURIComponent(String(value)).replace(/~/g, '%7E');
}

function header(headers, names) {
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined) return encoded(value);
  }
  return '';
}

export default function () {
  const iteration = exec.scenario.iterationInTest;
  const pick = PICKS[iteration % PICKS.length];
  const caller = Math.floor(pick / ENDPOINTS);
  const endpoint = QQ.endpoints[pick % ENDPOINTS];
  const metadata = exec.vu.metrics.metadata;
  metadata.qq = String(iteration);
  const res = http.request(endpoint.method, QQ.base + endpoint.path, endpoint.body, params[caller][pick % ENDPOINTS]);
  const t = res.timings;
  const before = t.connecting > 0 ? t.connecting + t.tls_handshaking : t.blocked;
  const record = [
    iteration,
    exec.scenario.startTime,
    res.status,
    res.error_code,
    before + t.duration,
    res.error ? encoded(res.error) : '',
  ];
  for (const names of QQ.headers) record.push(header(res.headers, names));
  metadata.qq = record.join('~');
  responses.add(1);
  delete metadata.qq;
}
