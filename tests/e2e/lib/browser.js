// A scripted "browser": follows a redirect chain with fetch, one hop at a
// time, carrying cookies per origin, and stops before a URL the caller names
// (the client's redirect_uri, which may have nothing listening).

/** One cookie jar per host:port. */
export class Browser {
  constructor() {
    this.jar = new Map();
    this.hops = [];
  }

  cookieHeader(url) {
    const cookies = this.jar.get(url.host);
    if (!cookies || cookies.size === 0) return undefined;
    return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  storeCookies(url, response) {
    const setCookies = response.headers.getSetCookie?.() ?? [];
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let cookies = this.jar.get(url.host);
      if (!cookies) { cookies = new Map(); this.jar.set(url.host, cookies); }
      const expired = attrs.some((a) => {
        const [k, v] = a.trim().split('=');
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(a.trim().slice(8)) <= Date.now();
        return false;
      });
      if (expired) cookies.delete(name); else cookies.set(name, value);
    }
  }

  /** One request, redirects not followed, cookies sent and stored. */
  async request(url, { method = 'GET', headers = {}, body } = {}) {
    const target = new URL(url);
    const cookie = this.cookieHeader(target);
    const response = await fetch(target, {
      method,
      body,
      redirect: 'manual',
      headers: { ...headers, ...(cookie ? { cookie } : {}) },
    });
    this.storeCookies(target, response);
    const location = response.headers.get('location');
    const hop = {
      method,
      url: target.href,
      status: response.status,
      location: location ? new URL(location, target).href : null,
      contentType: response.headers.get('content-type'),
    };
    this.hops.push(hop);
    return { response, hop };
  }

  /**
   * Starts at `url` and follows redirects until the next location satisfies `stop(URL)`
   * (returned unfetched as `stoppedAt`) or a response is not a redirect (returned as `final`).
   */
  async follow(url, { stop, maxHops = 12, method = 'GET', headers, body } = {}) {
    let next = { url, method, headers, body };
    for (let i = 0; i < maxHops; i += 1) {
      const { response, hop } = await this.request(next.url, next);
      if (![301, 302, 303, 307, 308].includes(hop.status) || !hop.location) {
        const text = await response.text();
        return { final: { ...hop, body: text, headers: response.headers }, hops: this.hops };
      }
      await response.arrayBuffer();
      const location = new URL(hop.location);
      if (stop && stop(location)) return { stoppedAt: location, last: hop, hops: this.hops };
      next = { url: location.href, method: 'GET' };
    }
    throw new Error(`more than ${maxHops} redirects: ${JSON.stringify(this.hops, null, 1)}`);
  }
}
