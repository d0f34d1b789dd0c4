// Records every unhandled promise rejection of the test process, so a test file can assert
// that the client left none (import it first).
export const unhandled = [];
process.on("unhandledRejection", (reason) => {
  unhandled.push(reason);
});

// Lets pending rejections surface (they are reported after the microtask queue drains).
export async function settle() {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}
