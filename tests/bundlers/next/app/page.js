"use client";
// The shared app (../../app/main.js) in a Next.js page: started from an effect, so init()
// runs only in the browser, never while the page is prerendered on the server.
import { useEffect } from "react";
import { start } from "../../app/main.js";

let started;

export default function Page() {
  useEffect(() => {
    started ??= start();
  }, []);
  return <p>sealsync in Next.js</p>;
}
