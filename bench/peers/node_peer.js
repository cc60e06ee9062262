// node_peer.js: the Node.js peer of `make bench`, one workload per call, printing one number.
// Times are the process's CPU time (process.cpuUsage), as ours are thread CPU time.
//
// usage: node bench/peers/node_peer.js WORKLOAD [N]
//   chain         ns per callback of an N-callback setImmediate chain (each schedules the next)
//   spawn         ns per task of N x (call an async function that awaits once, await it)
//   pending       resident bytes per pending async function (N awaiting one promise)
//   echo-server   prints its port, then echoes on 127.0.0.1 until killed
'use strict';
const net = require('net');

function cpuNs() {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function chain(n) {
  return new Promise((resolve) => {
    let left = n;
    const t0 = cpuNs();
    function cb() {
      if (--left > 0) setImmediate(cb);
      else resolve((cpuNs() - t0) / n);
    }
    setImmediate(cb);
  });
}

async function yieldOnce() {
  await null;
}

async function spawn(n) {
  const t0 = cpuNs();
  for (let i = 0; i < n; i++) await yieldOnce();
  return (cpuNs() - t0) / n;
}

async function waiter(p) {
  await p;
}

async function pending(n) {
  let release;
  const ev = new Promise((r) => { release = r; });
  if (global.gc) global.gc();
  const before = process.memoryUsage().rss;
  const all = new Array(n);
  for (let i = 0; i < n; i++) all[i] = waiter(ev);
  await null;
  const after = process.memoryUsage().rss;
  release();
  await Promise.all(all);
  return (after - before) / n;
}

function echoServer() {
  const srv = net.createServer({noDelay: true}, (sock) => {
    sock.on('data', (d) => sock.write(d));
    sock.on('error', () => {});
  });
  srv.listen({host: '127.0.0.1', port: 0, backlog: 256}, () => {
    process.stdout.write(srv.address().port + '\n');
  });
}

async function main() {
  const w = process.argv[2];
  const n = parseInt(process.argv[3] || '200000', 10);
  if (w === 'echo-server') return echoServer();
  let v;
  if (w === 'chain') v = await chain(n);
  else if (w === 'spawn') v = await spawn(n);
  else if (w === 'pending') v = await pending(n);
  else {
    process.stderr.write('usage: node node_peer.js chain|spawn|pending|echo-server [N]\n');
    process.exit(2);
  }
  process.stdout.write(v.toFixed(3) + '\n');
}
main();
