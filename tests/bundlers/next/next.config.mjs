// A static export (next/out/), served like the other bundlers' output. Turbopack, the
// default bundler of `next build` since Next.js 16.
export default { output: "export" };
