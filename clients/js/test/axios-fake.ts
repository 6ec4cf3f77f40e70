/** Real axios for the tests of the axios adapter, without a network. */
import axios, { AxiosError, AxiosHeaders, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { BASE } from "./fakes";

/** Real axios, its network replaced by an adapter that hands each request to `send` (a fake service). */
export function axiosTo(send: (input: URL, init: RequestInit) => Promise<Response>): AxiosInstance {
  return axios.create({
    baseURL: BASE,
    adapter: async (config: InternalAxiosRequestConfig) => {
      let res: Response;
      try {
        res = await send(new URL(config.url!, BASE), {
          method: config.method!.toUpperCase(),
          headers: AxiosHeaders.from(config.headers).toJSON() as Record<string, string>,
          body: config.data as string | undefined,
        });
      } catch {
        throw new AxiosError("Network Error", AxiosError.ERR_NETWORK, config);
      }
      const text = await res.text();
      const response = {
        data: text,
        status: res.status,
        statusText: res.statusText,
        headers: AxiosHeaders.from(Object.fromEntries(res.headers)),
        config,
        request: {},
      };
      if (config.validateStatus && !config.validateStatus(res.status)) {
        throw new AxiosError(`Request failed with status code ${res.status}`, AxiosError.ERR_BAD_RESPONSE, config, {}, response);
      }
      return response;
    },
  });
}
