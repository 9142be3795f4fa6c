/** esbuild loads the stylesheet as text for the standalone page. */
declare module '*.css' {
  const text: string;
  export default text;
}
