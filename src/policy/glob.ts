/** Globs for paths, image names and command lines: `*` is any run without `/`, `**` any run at all. */

export function globToRegex(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        source += ".*";
        i++;
      } else {
        source += "[^/]*";
      }
    } else if (c === "?") {
      source += "[^/]";
    } else {
      source += c.replace(/[.+^${}()|[\]\\/]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`, "su");
}

export function anyGlob(globs: readonly string[]): (value: string) => boolean {
  const regexes = globs.map(globToRegex);
  return (value) => regexes.some((r) => r.test(value));
}
