// Echoes the request back as JSON. Listens on $PORT, as baton's http runtime requires.
import { createServer } from 'node:http';

const port = Number(process.env.PORT);
createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(`${JSON.stringify({ method: req.method, path: req.url, body: Buffer.concat(chunks).toString('utf8') })}\n`);
  });
}).listen(port, '127.0.0.1', () => console.log(`http-echo listening on ${port}`));
