// What the local commands (replay, demo, evaluate, backtest) open: the GeoIP database of UC_GEOIP_DB_PATH
// (shared/geo/localDatabase.ts, where the backtest and the demo import it from too) and the alert defaults.
export { alertDefaults } from '../alerts/defaults.js';
export { openGeo } from '../geo/localDatabase.js';
