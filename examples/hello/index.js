// A baton node function: the default export is a Web-standard fetch handler.
export default {
  async fetch(request, env) {
    const name = (await request.text()).trim() || 'world';
    // what a function writes goes to its log: `baton logs hello`
    console.log(`greeting ${name}`);
    return new Response(`${env.GREETING ?? 'hello'}, ${name}!\n`, { headers: { 'content-type': 'text/plain' } });
  },
};
